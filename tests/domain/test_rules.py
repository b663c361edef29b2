"""Pure domain rules: names, tokens, credit, lifecycle, signing."""

from __future__ import annotations

from datetime import datetime

import pytest

from openscancloud.domain import credit
from openscancloud.domain.errors import Forbidden, Gone, InvalidInput
from openscancloud.domain.lifecycle import can_transition, check_transition, is_finished_alias
from openscancloud.domain.names import validate_project_name
from openscancloud.domain.signing import Signer
from openscancloud.domain.tokens import TokenKind, derived_token, hash_token, new_token, priority_for


@pytest.mark.parametrize("name", ["a", "scan-1700000000000.zip", "A.b_C-9", "x" * 128])
def test_valid_names(name):
    assert validate_project_name(name) == name


@pytest.mark.parametrize("name", [None, "", "x" * 129, "a/b", "..", ".", "a b", "a\\b", "a\0b", "ä"])
def test_invalid_names(name):
    with pytest.raises(InvalidInput):
        validate_project_name(name)


def test_tokens_are_random_hashed_and_prefixed():
    a, b = new_token(TokenKind.PRIVATE), new_token(TokenKind.PRIVATE)
    assert a != b and a.startswith("prv_") and len(a) > 40
    assert hash_token(a) != a and len(hash_token(a)) == 64
    assert derived_token(b"k", TokenKind.PUBLIC, "public") == derived_token(b"k", TokenKind.PUBLIC, "public")
    assert derived_token(b"k", TokenKind.PUBLIC, "public") != derived_token(b"j", TokenKind.PUBLIC, "public")
    assert priority_for("private") < priority_for("public")


def test_credit_rules():
    assert credit.bytes_to_gb(1_500_000_000) == 1.5
    assert credit.available_credit("private", 3.25, 10) == 3.25
    assert credit.available_credit("public", -4.0, 10) == 6.0
    assert credit.available_credit("public", +2.0, 10) == 10.0  # refunds never exceed the daily allowance
    assert credit.available_credit("worker", 5, 10) == 0.0
    assert credit.has_credit_for(1.0, 1.0) and not credit.has_credit_for(0.5, 1.0)
    assert credit.public_window_start(datetime(2026, 1, 2, 12)) == datetime(2026, 1, 1, 12)


def test_lifecycle():
    assert can_transition("created", "uploading") and can_transition("queued", "processing")
    assert can_transition("processing", "queued")  # lease expired
    assert can_transition("done", "created")  # reset
    assert not can_transition("done", "processing") and not can_transition("expired", "queued")
    assert can_transition("failed", "queued") and can_transition("done", "queued")  # reprocess
    with pytest.raises(Exception, match="cannot become"):
        check_transition("expired", "queued")
    assert is_finished_alias("processing done") and not is_finished_alias("processing")


def test_signer():
    s = Signer(b"secret")
    sig = s.sign("upload", "p", 1, 0, expires=2_000_000_000)
    s.verify("upload", "p", 1, 0, expires=2_000_000_000, signature=sig, now=1_000)
    with pytest.raises(Forbidden):
        s.verify("upload", "p", 2, 0, expires=2_000_000_000, signature=sig, now=1_000)
    with pytest.raises(Forbidden):
        s.verify("upload", "p", 1, 1, expires=2_000_000_000, signature=sig, now=1_000)
    with pytest.raises(Gone):
        s.verify("upload", "p", 1, 0, expires=2_000_000_000, signature=sig, now=2_000_000_001)
    with pytest.raises(Forbidden):
        Signer(b"other").verify("upload", "p", 1, 0, expires=2_000_000_000, signature=sig, now=1_000)
