// Opens Swagger UI of a running griffin-serve in headless Chromium, runs "Try it out" on
// POST /v1/completions with the documented example, and checks for a 200 with generated text.
//   node swagger-ui.mjs http://localhost:8080 target/swagger-ui.png
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
// What the page did, printed only if a step fails.
const events = [];
page.on('console', (message) => events.push(`console.${message.type()}: ${message.text()}`));
page.on('pageerror', (error) => events.push(`page error: ${error.message}`));
page.on('requestfailed', (request) => events.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
page.on('response', (response) => events.push(`${response.status()} ${response.url()}`));
try {
  await page.goto(`${base}/swagger-ui.html`);
  const operation = page.locator('#operations-OpenAI-compatible_API-completions');
  await operation.waitFor({ timeout: 30000 });
  await operation.locator('.opblock-summary').click();
  // Try-it-out is enabled by default in this deployment; turn it on only if it is not.
  const execute = operation.locator('button.execute');
  if (!(await execute.isVisible())) {
    await operation.locator('button.try-out__btn').click();
  }
  await execute.click();
  const status = operation.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 120000 });
  const code = (await status.innerText()).trim();
  const body = await operation.locator('.live-responses-table .response .microlight').first().innerText();
  await operation.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: true });
  const json = JSON.parse(body);
  if (!code.startsWith('200') || json.object !== 'text_completion' || !(json.choices[0].text.length > 0)) {
    console.error(`unexpected response ${code}: ${body}`);
    process.exit(1);
  }
  console.log(`swagger-ui: 200, generated ${JSON.stringify(json.choices[0].text)}`);
} catch (error) {
  console.error(events.join('\n'));
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-failed.png'), fullPage: true }).catch(() => {});
  throw error;
} finally {
  await browser.close();
}
