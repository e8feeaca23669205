"""Keys: their randomness, the comment suffix, Tecken's keys and hashing."""

import hashlib

import pytest

from identity_service import errors, keys


def test_new_keys_carry_256_random_bits():
    made = {keys.new_key() for _ in range(1000)}

    assert len(made) == 1000
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in made)


def test_a_comment_after_the_first_hyphen_is_ignored():
    key = keys.new_key()

    assert keys.parse(f"{key}-uploadscript") == key
    assert keys.parse(f"{key}-a-b-c") == key


def test_tecken_keys_of_32_hex_characters_are_accepted():
    legacy = "0123456789abcdef0123456789ABCDEF"

    assert keys.parse(legacy) == legacy.lower()


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "-comment",
        "xyz",
        "0" * 31,
        "0" * 33,
        "0" * 65,
        "g" * 64,
        "0" * 2000,
        "é" * 32,
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(sent):
    with pytest.raises(errors.InvalidArgument) as caught:
        keys.parse(sent)

    assert caught.value.reason == errors.TOKEN_MALFORMED
    assert caught.value.field == "token"
    if sent:
        assert sent not in caught.value.message


def test_only_the_sha256_is_kept_and_compared_in_constant_time():
    key = keys.new_key()
    stored = keys.digest(key)

    assert stored == hashlib.sha256(key.encode()).digest()
    assert keys.same_digest(stored, keys.digest(key))
    assert not keys.same_digest(stored, keys.digest(keys.new_key()))


def test_the_shown_prefix_is_too_short_to_guess_from():
    assert len(keys.prefix(keys.new_key())) * 4 <= 16
