"""The store on a real database: users, tokens, login attempts and the audit log."""

import asyncio
import datetime

import pytest

from identity_service import database, keys
from identity_service import permissions as perms
from identity_service.store import (
    API,
    BLOCKED_IN_AUTH0,
    DEACTIVATED,
    SESSION,
    AttemptRecord,
    Store,
)

NOW = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


@pytest.fixture
async def store(database_url):
    engine = database.create_engine(database_url, pool_size=5)
    yield Store(engine)
    await engine.dispose()


async def add_token(store, user_id, *, kind=API, expire=NOW + DAY, granted=()):
    key = keys.new_key()
    token = await store.create_token(
        user_id,
        kind=kind,
        key_hash=keys.digest(key),
        key_prefix=keys.prefix(key),
        granted=frozenset(granted),
        notes="",
        now=NOW,
        expire_time=expire,
        actor="test",
    )
    return key, token


async def test_set_permissions_creates_the_user_once_whatever_the_case(store):
    user, created = await store.set_permissions(
        "Alice@Example.com", frozenset({perms.UPLOAD_SYMBOLS}), None, actor="t", now=NOW
    )
    again, created_again = await store.set_permissions(
        "alice@example.COM", frozenset(), True, actor="t", now=NOW
    )

    assert created and not created_again
    assert again.id == user.id
    assert again.superuser and again.permissions == frozenset()
    assert again.effective_permissions == perms.ALL
    assert (await store.get_user("ALICE@example.com")).id == user.id


async def test_concurrent_first_sign_ins_make_one_user(store):
    results = await asyncio.gather(
        *(store.sign_in("bob@example.com", now=NOW) for _ in range(10))
    )

    assert len({user.id for user, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_find_token_returns_token_and_owner(store):
    user, _ = await store.sign_in("carol@example.com", now=NOW)
    key, token = await add_token(store, user.id, granted={perms.UPLOAD_SYMBOLS})

    found_token, owner = await store.find_token(keys.digest(key))

    assert found_token == token
    assert owner.email == "carol@example.com"
    assert await store.find_token(keys.digest(keys.new_key())) is None


async def test_list_tokens_by_state_hides_sessions(store):
    user, _ = await store.sign_in("dan@example.com", now=NOW)
    _, active = await add_token(store, user.id)
    _, expired = await add_token(store, user.id, expire=NOW - DAY)
    _, revoked = await add_token(store, user.id)
    await add_token(store, user.id, kind=SESSION)
    assert await store.revoke_token(revoked.id, actor="t", now=NOW)

    def ids(tokens):
        return {token.id for token in tokens}

    assert ids(await store.list_tokens(user.id, state="active", now=NOW)) == {active.id}
    assert ids(await store.list_tokens(user.id, state="expired", now=NOW)) == {
        expired.id
    }
    assert ids(await store.list_tokens(user.id, state="all", now=NOW)) == {
        active.id,
        expired.id,
        revoked.id,
    }


async def test_revoking_twice_reports_nothing_to_revoke(store):
    user, _ = await store.sign_in("erin@example.com", now=NOW)
    _, token = await add_token(store, user.id)

    assert await store.revoke_token(token.id, actor="t", now=NOW)
    assert not await store.revoke_token(token.id, actor="t", now=NOW)
    assert await store.get_api_token(token.id) is None


async def test_a_login_attempt_is_used_once_and_expires(store):
    attempt = AttemptRecord("state-1", "nonce", "v" * 43, "http://127.0.0.1/cb")
    await store.save_attempt(attempt, now=NOW, expire_time=NOW + DAY)
    old = AttemptRecord("state-2", "nonce", "v" * 43, "http://127.0.0.1/cb")
    await store.save_attempt(old, now=NOW, expire_time=NOW + DAY)

    assert await store.use_attempt("state-1", now=NOW) == attempt
    assert await store.use_attempt("state-1", now=NOW) is None
    assert await store.use_attempt("state-2", now=NOW + 2 * DAY) is None
    assert await store.use_attempt("never-issued", now=NOW) is None


async def test_concurrent_uses_of_one_state_let_one_through(store):
    attempt = AttemptRecord("state-race", "nonce", "v" * 43, "http://127.0.0.1/cb")
    await store.save_attempt(attempt, now=NOW, expire_time=NOW + DAY)

    results = await asyncio.gather(
        *(store.use_attempt("state-race", now=NOW) for _ in range(8))
    )

    assert sum(result is not None for result in results) == 1


async def test_a_block_does_not_replace_an_administrators_deactivation(store):
    user, _ = await store.sign_in("fay@example.com", now=NOW)
    await store.set_active("fay@example.com", False, actor="t", now=NOW)

    await store.record_blocked(user.id, now=NOW)
    after = await store.reactivate_after_block(user.id, now=NOW)

    assert not after.active
    assert after.inactive_reason == DEACTIVATED


async def test_a_block_is_undone_only_by_reactivation(store):
    user, _ = await store.sign_in("gus@example.com", now=NOW)

    await store.record_blocked(user.id, now=NOW)
    blocked = await store.get_user_by_id(user.id)
    back = await store.reactivate_after_block(user.id, now=NOW)

    assert not blocked.active and blocked.inactive_reason == BLOCKED_IN_AUTH0
    assert blocked.auth0_check_time == NOW
    assert back.active and back.inactive_reason is None


async def test_activation_forgets_the_last_auth0_check(store):
    user, _ = await store.sign_in("hal@example.com", now=NOW)
    await store.record_not_blocked(user.id, now=NOW)
    await store.set_active("hal@example.com", False, actor="t", now=NOW)

    back = await store.set_active("hal@example.com", True, actor="t", now=NOW)

    assert back.active and back.auth0_check_time is None


async def test_changes_leave_an_audit_trail_without_keys(store):
    user, _ = await store.set_permissions(
        "ida@example.com", frozenset({perms.MANAGE_TOKENS}), None, actor="cli", now=NOW
    )
    key, token = await add_token(store, user.id, granted={perms.MANAGE_TOKENS})
    await store.extend_token(token.id, NOW + 2 * DAY, actor="cli", now=NOW)
    await store.revoke_token(token.id, actor="cli", now=NOW)
    await store.set_active("ida@example.com", False, actor="cli", now=NOW)

    events = await store.audit_events(user.id)

    assert [event["action"] for event in events] == [
        "set_permissions",
        "create_token",
        "extend_token",
        "revoke_token",
        "deactivate",
    ]
    assert all(key not in event["detail"] for event in events)


async def test_times_come_back_timezone_aware(store):
    user, _ = await store.sign_in("jo@example.com", now=NOW)

    assert user.create_time == NOW
    assert user.create_time.tzinfo is not None
