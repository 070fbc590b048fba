"""Drives a running griffin-serve with the official OpenAI Python client.

    python openai_client_check.py http://localhost:8080/v1 SmolLM2-135M-Instruct

Streams and non-streams chat and text completions, forces a token with logit_bias, and checks the
OpenAI error envelope of a bad request and of an unsupported response format. Exits non-zero on the first failed check; prints one line per check.
"""
import json
import sys
import urllib.request

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + (f": {detail}" if detail else ""), flush=True)
    if not condition:
        sys.exit(1)


chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=8, temperature=0)
check("chat completion", chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
      and len(chat.choices[0].message.content) > 0, repr(chat.choices[0].message.content))
check("chat usage", chat.usage.prompt_tokens > 0 and chat.usage.completion_tokens > 0)

pieces, finish, usage, roles = [], None, None, []
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True})
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
check("chat stream text equals the whole response", "".join(pieces) == chat.choices[0].message.content,
      repr("".join(pieces)))
check("chat stream role and finish", roles == ["assistant"] and finish in ("stop", "length"), f"{roles} {finish}")
check("chat stream usage", usage is not None and usage.completion_tokens == chat.usage.completion_tokens)

completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0,
                                       extra_body={"griffin": {"density": 0.5, "method": "topk"}})
check("text completion", completion.object == "text_completion" and len(completion.choices[0].text) > 0,
      repr(completion.choices[0].text))
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model=model, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True,
    extra_body={"griffin": {"density": 0.5, "method": "topk"}}) if c.choices)
check("text completion stream", streamed == completion.choices[0].text, repr(streamed))

# the server's own tokenizer route (not OpenAI's API) names the token to force
request = urllib.request.Request(base_url.removesuffix("/v1") + "/tokenize", data=json.dumps({"prompt": " Lyon"}).encode(),
                                 headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as response:
    lyon = json.load(response)["tokens"][0]
biased = client.completions.create(model=model, prompt="The capital of France is", max_tokens=3, temperature=0,
                                   logit_bias={str(lyon): 100})
check("logit bias", biased.choices[0].text == " Lyon" * 3, repr(biased.choices[0].text))

# the prompt's log-likelihood, as evaluation harnesses ask for it: echo with logprobs
scored = client.completions.create(model=model, prompt="The capital of France is Paris", max_tokens=1, temperature=0,
                                   echo=True, logprobs=1).choices[0]
check("echo with logprobs", scored.text.startswith("The capital of France is Paris")
      and scored.logprobs.token_logprobs[0] is None and scored.logprobs.top_logprobs[0] is None
      and all(value <= 0 for value in scored.logprobs.token_logprobs[1:])
      and "".join(scored.logprobs.tokens) == scored.text, repr(scored))

# several prompts in one request, as harnesses batch them: prompt i's choice is index i
batch = client.completions.create(model=model, prompt=["The capital of France is", "The capital of France is Paris"],
                                  max_tokens=1, temperature=0, echo=True, logprobs=1)
check("several prompts", [c.index for c in batch.choices] == [0, 1]
      and batch.choices[1].logprobs.tokens == scored.logprobs.tokens
      and all(a == b or abs(a - b) < 1e-3 for a, b in zip(batch.choices[1].logprobs.token_logprobs[1:],
                                                           scored.logprobs.token_logprobs[1:]))
      and batch.choices[0].text.startswith("The capital of France is"), repr([c.text for c in batch.choices]))

try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                   response_format={"type": "json_object"})
    check("an unsupported response format is refused", False)
except openai.BadRequestError as error:
    body = error.body if isinstance(error.body, dict) else {}
    check("unsupported response format", body.get("param") == "response_format", str(body))

try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], temperature=7)
    check("bad request is refused", False)
except openai.BadRequestError as error:
    body = error.body if isinstance(error.body, dict) else {}
    check("bad request error envelope", error.status_code == 400 and body.get("param") == "temperature"
          and body.get("type") == "invalid_request_error", str(body))

try:
    client.completions.create(model="no-such-model", prompt="hi", max_tokens=1)
    check("unknown model is refused", False)
except openai.NotFoundError as error:
    check("unknown model error", error.status_code == 404)

models = client.models.list()
check("models list", [m.id for m in models.data] == [model])
print("openai client: all checks passed")
