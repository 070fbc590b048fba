"""Writes src/test/resources/fixtures/rouge/pairs.json: reference/prediction pairs with the ROUGE-1/2/L
scores of Google's rouge-score package (no stemming), for the Java implementation to agree with.

    python tools/reference/make_rouge_fixtures.py
"""
import json
import pathlib
import random

from rouge_score import rouge_scorer

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "xsum_1shot_dev.jsonl"

scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
pairs = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat.", "A dog lay on a rug."),
    ("", "Something"), ("Something", ""), ("", ""),
    ("Numbers like 3.14 and 1,000 count: 42!", "numbers 3 14 and 1 000 count 42"),
    ("Ünïcode café naïve résumé", "unicode cafe naive resume"),
    ("the the the the", "the the"),
    ("Edinburgh's winter festivals generated more than £241m for the city.",
     "Edinburgh's Christmas events brought £199.5m to the local economy, organisers said."),
]
rng = random.Random(7)
if DATA.exists():
    rows = [json.loads(line) for line in DATA.open()]
    summaries = [r["summary_gt"] for r in rows]
    for _ in range(40):
        a, b = rng.sample(summaries, 2)
        words = b.split()
        rng.shuffle(words)
        pairs.append((a, " ".join(words[: rng.randint(1, len(words))])))
        pairs.append((a, b))
out = []
for reference, prediction in pairs:
    s = scorer.score(reference, prediction)
    out.append({"reference": reference, "prediction": prediction,
                "rouge1": [s["rouge1"].precision, s["rouge1"].recall, s["rouge1"].fmeasure],
                "rouge2": [s["rouge2"].precision, s["rouge2"].recall, s["rouge2"].fmeasure],
                "rougeL": [s["rougeL"].precision, s["rougeL"].recall, s["rougeL"].fmeasure]})
target = ROOT / "src" / "test" / "resources" / "fixtures" / "rouge" / "pairs.json"
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
print(f"{len(out)} pairs -> {target}")
