"""Every key bnsearch writes into a store (MLflow, Optuna, Keras Tuner), named once so no side
misspells it; the values are what stores hold (renaming one orphans earlier studies')."""

from __future__ import annotations

BACKEND = "bnsearch.backend"
BACKFILLED = "bnsearch.backfilled"
BLOCK = "bnsearch.block"
DATA_FINGERPRINT = "bnsearch.data_fingerprint"
ENGINE = "bnsearch.engine"
EXPORTS_TRIAL = "bnsearch.exports_trial"
FAIL_REASON = "bnsearch.fail_reason"
HOST = "bnsearch.host"
INTERRUPTED = "bnsearch.interrupted"
KIND = "bnsearch.kind"
LATEST = "bnsearch.latest"
NETWORK = "bnsearch.network"
NO_RANKING = "bnsearch.no_ranking_reason"
PARENT_RUN = "bnsearch.parent_run"
PHASE = "bnsearch.phase"
PID = "bnsearch.pid"
REPLAY_WORST = "bnsearch.replay_worst"
REPLAYS_RUN = "bnsearch.replays_run"
REPLAYS_TRIAL = "bnsearch.replays_trial"
RESULT = "bnsearch.result"
RESUMES_RUN = "bnsearch.resumes_run"
RESUMES_TRIAL = "bnsearch.resumes_trial"
RETRIES_TRIAL = "bnsearch.retries_trial"
SEED = "bnsearch.seed"
SPACE = "bnsearch.space"
STARTED = "bnsearch.started"
STATE = "bnsearch.state"
TRIAL_NUMBER = "bnsearch.trial_number"
#: The verdict's tags (the-two-questions.md, in docs/explanation, says what each holds).
VERDICT = "bnsearch.verdict"
VERDICT_BN = "bnsearch.verdict_bn"
VERDICT_BN_HELPS = "bnsearch.verdict_bn_helps"
VERDICT_BN_TEXT = "bnsearch.verdict_bn_text"
VERDICT_HEADLINE = "bnsearch.verdict_headline"
VERDICT_OUTCOME = "bnsearch.verdict_outcome"
VERDICT_PLACEMENT_TEXT = "bnsearch.verdict_placement_text"
VERDICT_QUESTION = "bnsearch.verdict_question"
VERDICT_RULE = "bnsearch.verdict_rule"
VERDICT_TEXT = "bnsearch.verdict_text"
#: A trial withdrawn from a claim that lost its lock: not an outcome, and not retried.
WITHDRAWN = "bnsearch.withdrawn"
WORKER = "bnsearch.worker"


def verdict_metric(stat: str, *scope: str) -> str:
    """A verdict metric of the parent run: ``verdict.median_difference`` (the placement
    pair), ``verdict.bn.before.cs_high`` (``before − none``), ``verdict.relu.ci_low``."""
    return ".".join(("verdict", *scope, stat))


def per_activation(key: str, activation: str) -> str:
    """The per-activation variant of a verdict key (``bnsearch.verdict.relu``)."""
    return f"{key}.{activation}"
