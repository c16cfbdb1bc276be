"""The budget rule of paired studies, shared by both backends: whole blocks, up to
``target_trials`` when it is set, then the confirmation round; ``--until settled`` stops
sooner once the anytime-valid verdict has answered the questions the study asks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bnsearch.config import StudyConfig
from bnsearch.stats import ASKED, QUESTION_TEXT, counted, min_blocks_to_settle, verdict_for
from bnsearch.trial import Phase, TrialResult


def _settled_on(question: str) -> str:
    """What a run until settled stops on, in its plan's words: ``“before or after?” is``."""
    asked = [QUESTION_TEXT[q].replace("help?", "help here?") for q in ASKED[question]]
    return f"both questions ({' '.join(asked)}) are" if len(asked) > 1 else f"“{asked[0]}” is"


def paired_budget(config: StudyConfig, have: int) -> tuple[int, str]:
    """Trials this run plans (whole blocks, then the confirmation round; until settled, a
    cap) and how to say so; ``have`` is the study's search trials so far."""
    block = len(config.space.placement)
    wanted = config.trials_per_run if config.target_trials is None else config.target_trials - have
    search = math.ceil(max(wanted, 0) / block) * block
    confirm = config.confirm_seeds * block if search else 0
    if config.target_trials is None:
        text = f"{config.trials_per_run} trials"
    else:
        text = f"search trials up to {config.target_trials} (has {have})"
    if config.until == "settled":
        text = f"{text} at most, stopping as soon as {_settled_on(config.question)} settled"
    return search + confirm, text


def cannot_settle_notice(config: StudyConfig, results: Sequence[TrialResult]) -> str | None:
    """One line, before training, when this run's cap cannot bring the study (``results``:
    its stored trials) to the blocks the anytime-valid rule needs; else None."""
    block = len(config.space.placement)
    if config.until != "settled" or block < 2:
        return None
    need = min_blocks_to_settle()
    have = len({r.spec.block for r in results if r.spec.phase == Phase.SEARCH})
    if config.target_trials is not None:
        cap = math.ceil(config.target_trials / block)
        if max(cap, have) >= need:
            return None
        made = f"a cap of {config.target_trials} search trials makes {counted(cap, 'block')}"
        fix = f"raise target_trials to {need * block}"
    else:
        added = math.ceil(config.trials_per_run / block)
        if have + added >= need:
            return None
        made = f"{config.trials_per_run} trials make {counted(added, 'block')}"
        made += f" (the study holds {have} already)" if have else ""
        fix = f"raise --n-trials to {(need - have) * block}"
    return (
        f"bnsearch: notice: {made}; the verdict needs at least {need} blocks to settle, so "
        f"this run can only report, not decide ({fix})."
    )


def batch_room(config: StudyConfig, capacity: int, search_trials: int) -> int:
    """Trials to claim for the next batch: until settled, the first batch holds the fewest
    blocks that can settle; else the engine's capacity."""
    if config.until != "settled":
        return capacity
    block = len(config.space.placement)
    first_look = min_blocks_to_settle() * block
    if search_trials >= first_look:
        return capacity
    return max(block, min(capacity, first_look - search_trials))


def settled_verdict(config: StudyConfig, results: Sequence[TrialResult]) -> str | None:
    """Until settled, once every worker's blocks have settled the questions the study asks,
    a line for the terminal (``settled after 8 blocks: BN helps ...``); else None."""
    if config.until != "settled":
        return None
    verdict = verdict_for(
        [r for r in results if r.spec.phase == Phase.SEARCH],
        metric=config.metric,
        threshold=config.threshold,
        seed=config.seed,
        until="settled",
        question=config.question,
        decide_only=True,  # the sequences decide; the full verdict is built once, when shown
    )
    if not verdict.settled:
        return None
    return f"settled after {verdict.n_blocks} blocks: {verdict.words.replace('`', '')}"
