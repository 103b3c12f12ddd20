"""Helpers shared by the example scripts (not part of the package)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def parser(doc: str, *, episodes: int, quick_episodes: int, out: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"a smoke run ({quick_episodes} episodes, 1 seed)")
    ap.add_argument("--episodes", type=int, default=None, help=f"outer steps per run (default {episodes})")
    ap.add_argument("--out", default=out, help=f"output folder (default {out})")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--overwrite", action="store_true", help="replace the runs that --out already holds")
    ap.add_argument("--eval-episodes", type=int, default=None,
                    help="held-out episodes per run's final network (default 1000; --quick: 32; 0: none)")
    ap.set_defaults(_episodes=episodes, _quick_episodes=quick_episodes)
    return ap


def eval_episodes(args: argparse.Namespace) -> int:
    """Held-out episodes per run (``compare``'s ``eval_episodes``): ``--eval-episodes``, else 32 with
    ``--quick``, else 1000."""
    if args.eval_episodes is not None:
        return args.eval_episodes
    return 32 if args.quick else 1000


def episodes(args: argparse.Namespace) -> int:
    if args.episodes is not None:
        return args.episodes
    return args._quick_episodes if args.quick else args._episodes


def trailing_first_below(history: list[dict[str, Any]], threshold: float, window: int = 10,
                         higher: bool = False) -> int | None:
    """First episode whose trailing mean (``window`` episodes) of the train metric crosses ``threshold``."""
    recs = [r for r in history if r.get("phase") == "train"]
    for i in range(len(recs)):
        w = recs[max(0, i + 1 - window): i + 1]
        m = sum(r["metric"] for r in w) / len(w)
        if (m >= threshold) if higher else (m <= threshold):
            return int(recs[i]["episode"])
    return None


def save_summary(out: str, summary: dict[str, Any]) -> None:
    p = Path(out)
    p.mkdir(parents=True, exist_ok=True)
    (p / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
