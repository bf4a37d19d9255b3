"""The redactor masks every known secret in text and bytes on their way out of the process, as
it is and as it appears inside a JSON string, however many secrets a deployment holds."""

from __future__ import annotations

import orjson
import pytest

from service.redaction import MASK, Redactor, SecretSet


def test_each_secret_is_masked_in_text_and_in_bytes() -> None:
    redactor = Redactor(["tok-alpha", "tok-beta"])
    line = "called with tok-alpha, then tok-beta, then tok-alpha again"
    assert redactor.text(line) == "called with ***, then ***, then *** again"
    assert redactor.data(line.encode()) == redactor.text(line).encode()


def test_a_secret_inside_a_json_string_is_masked_as_escaped() -> None:
    secret = 'p"ss\\word'
    rendered = orjson.dumps({"message": f"refused {secret}"}).decode()
    assert secret not in rendered  # escaped: the plain form would not find it
    masked = Redactor([secret]).text(rendered)
    assert masked == '{"message":"refused ***"}'


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    redactor = Redactor(["abc", "abc-longer"])
    assert redactor.text("x abc-longer y abc") == f"x {MASK} y {MASK}"
    assert redactor.data(b"x abc-longer y abc") == b"x *** y ***"


def test_positions_are_right_after_characters_of_several_bytes() -> None:
    redactor = Redactor(["s3cr3t"])
    assert redactor.text("é😀 s3cr3t ü") == "é😀 *** ü"
    assert redactor.data("é😀 s3cr3t ü".encode()) == "é😀 *** ü".encode()


def test_text_without_a_secret_is_returned_as_it_is() -> None:
    line = b'{"response":"SUCCESS"}'
    assert Redactor(["tok-alpha"]).data(line) is line
    assert Redactor([]).data(line) is line
    assert not Redactor([]) and Redactor(["x"])


def test_a_secret_added_to_the_set_later_is_masked_too() -> None:
    secrets = SecretSet(["old-token"])
    redactor = Redactor(secrets)
    assert redactor.text("old-token new-token") == "*** new-token"
    secrets.add("new-token")  # a token re-read from its file
    assert redactor.text("old-token new-token") == "*** ***"


@pytest.mark.parametrize("companies", [1, 100, 1000])
def test_every_companys_token_is_masked_among_many(companies: int) -> None:
    tokens = [f"token-{n:04d}-{n * 7919 % 10007:05d}" for n in range(companies)]
    redactor = Redactor(tokens)
    for token in (tokens[0], tokens[-1], tokens[companies // 2]):
        assert redactor.data(f'{{"m":"bad {token}!"}}'.encode()) == b'{"m":"bad ***!"}'


def test_secrets_that_overlap_in_a_text_are_masked_together() -> None:
    """Masking one secret at a time let the rest of an overlapping one show (``xa***x``)."""
    redactor = Redactor(["abc", "bcdefgh"])
    assert redactor.text("xabcdefghx") == "x***x"
    assert redactor.data(b"xabcdefghx") == b"x***x"
    assert redactor.text("abcabc") == "******"  # next to each other, not overlapping


def test_text_with_a_lone_surrogate_is_masked_too() -> None:
    """Text decoded with ``surrogateescape`` (an environment variable, a file name) holds lone
    surrogates, which UTF-8 cannot encode; it is masked all the same."""
    assert Redactor(["tok-alpha"]).text("a\udcff tok-alpha") == "a\udcff ***"
