"""Reasons the reconciler hands on unmade are scrubbed as they are made, exactly as the
reasons made at once were scrubbed when the evaluation returned (`scrubbing.scrubbed`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from autoscaler import redact
from autoscaler.core.model import DECISION_REASONS
from autoscaler.core.reasons import Pending, later, pending
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.scrubbing import scrubbed
from tests.support.fuzz import fuzz_settings
from tests.unit.core.test_decision_properties import Case
from tests.unit.core.test_reasons import decision_with, eager, forecasting_cases

TOKEN = "lazy-secret-7c41e2"


def test_a_secret_in_a_reason_made_later_is_masked_when_it_is_made() -> None:
    with registry():
        redact.register(TOKEN)
        parts = Pending(["plain", later("echo {} from //{}@host".format, TOKEN, "user:pw")])
        evaluation = scrubbed(Evaluation(decision=decision_with(parts)))
        assert pending(DECISION_REASONS.stored(evaluation.decision)) is not None  # not made yet
        assert evaluation.decision.reasons == ("plain", "echo *** from //***@host")


@fuzz_settings(ci=150)
@given(case=forecasting_cases(), secret=st.sampled_from(["rps:", "c0: ", "c1: ", " → ", "load"]))
def test_scrubbed_reasons_made_later_are_those_made_at_once(case: Case, secret: str) -> None:
    """Whatever a secret overlaps (a check's name, an arrow), masking a text as it is made
    gives what masking it made gave."""
    with registry():
        redact.register(secret)
        lazily = scrubbed(Evaluation(decision=case.decide().decision))
        with eager():
            at_once = scrubbed(Evaluation(decision=case.decide().decision))
        assert type(DECISION_REASONS.stored(at_once.decision)) is tuple
        assert lazily.decision.reasons == at_once.decision.reasons


@contextlib.contextmanager
def registry() -> Iterator[None]:
    """A registry of secrets of the test's own, so that what it registers (ordinary words
    here) masks nothing in other tests."""
    with patch.object(redact, "_secrets", set()), patch.object(redact, "_pattern", None):
        yield
