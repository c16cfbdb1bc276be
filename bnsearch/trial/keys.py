"""Every key bnsearch writes into a store, named once: MLflow tags and params, Optuna user
and system attributes, Keras Tuner trial metadata. Readers and writers import the constant,
so a key cannot be misspelt on one side only; the values are what the stores hold (renaming
one would orphan what earlier studies wrote)."""

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
VERDICT = "bnsearch.verdict"
VERDICT_OUTCOME = "bnsearch.verdict_outcome"
VERDICT_RULE = "bnsearch.verdict_rule"
VERDICT_TEXT = "bnsearch.verdict_text"
#: A trial withdrawn from a claim that lost its lock: not an outcome, and not retried.
WITHDRAWN = "bnsearch.withdrawn"
WORKER = "bnsearch.worker"


def per_activation(key: str, activation: str) -> str:
    """The per-activation variant of a verdict key (``bnsearch.verdict.relu``)."""
    return f"{key}.{activation}"
