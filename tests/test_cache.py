"""The token cache: trusted only while fresh, and never refilled with stale reads."""

import datetime

from identity_service.cache import TokenCache
from identity_service.store import TokenRecord, UserRecord

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


class FakeMonotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(number: int) -> tuple[bytes, TokenRecord, UserRecord]:
    key_hash = number.to_bytes(32, "big")
    token = TokenRecord(
        id=f"{number:032x}",
        user_id=number,
        kind="api",
        key_hash=key_hash,
        key_prefix="abcd",
        permissions=frozenset(),
        notes="",
        create_time=NOW,
        expire_time=NOW + datetime.timedelta(days=1),
        revoke_time=None,
    )
    user = UserRecord(
        id=number,
        email=f"user{number}@example.com",
        active=True,
        superuser=False,
        permissions=frozenset(),
        inactive_reason=None,
        create_time=NOW,
        last_login_time=None,
        auth0_check_time=NOW,
    )
    return key_hash, token, user


def fresh_cache(clock: FakeMonotonic, **options) -> TokenCache:
    cache = TokenCache(monotonic=clock, max_staleness_seconds=1.0, **options)
    cache.observe(7, clock())
    return cache


def test_a_hit_needs_a_recent_read_of_the_counter():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)
    cache.put(key_hash, token, user, cache.epoch)

    assert cache.get(key_hash) == (token, user)

    clock.now += 1.0
    assert cache.get(key_hash) is None


def test_the_window_starts_when_the_read_began():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)
    cache.put(key_hash, token, user, cache.epoch)

    began = clock.now
    clock.now += 0.9
    cache.observe(7, began)

    clock.now += 0.2
    assert cache.get(key_hash) is None


def test_a_moved_counter_drops_everything():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)
    cache.put(key_hash, token, user, cache.epoch)

    cache.observe(8, clock())

    assert cache.get(key_hash) is None


def test_a_read_that_began_before_a_clear_is_not_kept():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)

    epoch = cache.epoch
    cache.clear()
    cache.put(key_hash, token, user, epoch)

    assert cache.get(key_hash) is None


def test_nothing_is_kept_before_the_counter_was_ever_read():
    clock = FakeMonotonic()
    cache = TokenCache(monotonic=clock)
    key_hash, token, user = records(1)

    cache.put(key_hash, token, user, cache.epoch)
    cache.observe(1, clock())

    assert cache.get(key_hash) is None


def test_distrust_stops_hits_until_the_next_read():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)
    cache.put(key_hash, token, user, cache.epoch)

    cache.distrust()
    assert cache.get(key_hash) is None

    cache.observe(7, clock())
    assert cache.get(key_hash) == (token, user)


def test_the_oldest_tokens_go_first_past_the_limit():
    clock = FakeMonotonic()
    cache = fresh_cache(clock, max_entries=2)
    entries = [records(number) for number in (1, 2, 3)]
    for key_hash, token, user in entries:
        cache.put(key_hash, token, user, cache.epoch)

    assert cache.get(entries[0][0]) is None
    assert cache.get(entries[2][0]) is not None


def test_an_updated_user_replaces_the_cached_one():
    clock = FakeMonotonic()
    cache = fresh_cache(clock)
    key_hash, token, user = records(1)
    cache.put(key_hash, token, user, cache.epoch)

    later = UserRecord(**{**user.__dict__, "auth0_check_time": NOW})
    cache.update_user(later, cache.epoch)

    assert cache.get(key_hash)[1] is later
