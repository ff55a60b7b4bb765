"""Write tests/eval/floors.yaml from a run of every question and claim set on the code as it is:
pass rate - 0.06, refusal precision and recall - 0.1, wrong-topic answers + 3; false claims shown
no more than measured, faithful kept - 0.05. Run it only after the held-out first runs are recorded
(the closing notes give them): the floors keep a level, they do not measure it.

    python scripts/floors.py "comment line saying what code the floors were taken on"
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from assistant.claims import evaluate_claims, load_claims
from assistant.evaluate import EVAL_DIR, SPLITS, corpora, corpus_pipeline, evaluate_corpus
from assistant.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def _down(value: float, by: float) -> float:
    return max(0.0, round(value - by, 2))


def main(comment: str) -> None:
    root = ROOT / EVAL_DIR
    floors: dict[str, dict] = {"questions": {}, "claims": {}}
    for name in corpora(root):
        with corpus_pipeline(load_settings(), name, root) as pipeline:
            for split in SPLITS:
                if (root / name / f"questions-{split}.yaml").exists():
                    r = evaluate_corpus(pipeline, name, split, root)
                    floors["questions"].setdefault(name, {})[split] = {
                        "pass_rate": _down(r["pass_rate"], 0.06),
                        "refusal_precision": _down(r["refusal_precision"], 0.1),
                        "refusal_recall": _down(r["refusal_recall"], 0.1),
                        "wrong_topic_max": r["wrong_topic"] + 3,
                    }
                if (root / name / f"claims-{split}.yaml").exists():
                    c = evaluate_claims(pipeline, load_claims(root / name / f"claims-{split}.yaml"))
                    floors["claims"].setdefault(name, {})[split] = {
                        "false_shown_max": c["false_shown"],
                        "faithful_kept_rate": _down(c["faithful_kept_rate"], 0.05),
                    }
    header = (__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"# {header}", f"# {comment}"]
    body = yaml.safe_dump(floors, default_flow_style=None, sort_keys=True, width=200)
    (root / "floors.yaml").write_text("\n".join(lines) + "\n" + body, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
