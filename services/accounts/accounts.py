"""Accounts: who may sign in, with which role, and their passwords.

Roles form a ladder; each includes the ones below it:

- ``annotator`` labels (Label, Grid, Explore, Dashboard, Files);
- ``reviewer`` also works the review queue;
- ``admin`` also manages classes, settings, export/import and accounts.

Passwords are hashed with Argon2id (argon2-cffi's RFC 9106 defaults); a hash made with
older parameters is replaced at the next successful sign-in. Every failed sign-in costs
one hash verification, whether or not the name exists, and gives the same message; after
ten failures in five minutes a name is refused until the oldest failure is five minutes old.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from services.accounts.sign_in_throttle import SignInThrottle
from services.database import Database
from services.errors import UserError
from storage.accounts.sign_in_models import RememberedSignIn
from storage.models import Annotator, Role
from storage.types import utc_now

HASHER = PasswordHasher()  # Argon2id, RFC 9106 low-memory profile
THROTTLE = SignInThrottle()
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing cost is per byte; longer inputs only cost the server
MAX_NAME_LENGTH = 200
WRONG_CREDENTIALS = "wrong name or password"
RANK = {Role.ANNOTATOR: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Account:
    """What the app needs to know about a signed-in person."""

    id: int
    name: str
    role: Role
    email: str | None
    has_password: bool
    disabled: bool

    def can(self, role: Role) -> bool:
        """Whether this account has ``role`` or a role above it (and is not disabled)."""
        return not self.disabled and RANK[self.role] >= RANK[role]


@cache
def _unknown_user_hash() -> str:
    """Verified against when the name is unknown, so a miss costs what a wrong password costs
    (made on first use: importing this module stays cheap for the command line)."""
    return HASHER.hash("no account has this password")


def _account(row: Annotator) -> Account:
    return Account(row.id, row.name, row.role, row.email, row.password_hash is not None, row.disabled_at is not None)


def parse_role(value: str | Role) -> Role:
    """``value`` as a Role; a clear error naming the valid ones otherwise."""
    if isinstance(value, Role):
        return value
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise UserError(f"unknown role {value!r}; use one of: {', '.join(r.value for r in Role)}") from None


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError("the account name is empty; type a name")
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(f"the account name has {len(name)} characters; use at most {MAX_NAME_LENGTH}")
    return name


def _clean_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise UserError(f"{email!r} is not an email address; use the address the sign-in provider reports")
    return email


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short; use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password is too long; use at most {MAX_PASSWORD_LENGTH} characters")
    return HASHER.hash(password)


def _row(session: Session, name: str) -> Annotator:
    row = session.scalar(select(Annotator).where(Annotator.name == name.strip()))
    if row is None:
        raise UserError(f"no account is named {name.strip()!r}; check the name on the Users page")
    return row


def _require_admin(session: Session, by: str | None) -> None:
    """``by`` None is the operator at the command line, who holds the database anyway."""
    if by is None:
        return
    actor = session.scalar(select(Annotator).where(Annotator.name == by))
    if actor is None or actor.disabled_at is not None or actor.role is not Role.ADMIN:
        raise UserError(f"{by!r} is not an admin; only an admin manages accounts")


def _enabled_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Annotator)
            .where(Annotator.role == Role.ADMIN, Annotator.disabled_at.is_(None))
        )
        or 0
    )


def _lock_accounts(session: Session) -> None:
    # SQLite write transactions already begin IMMEDIATE; PostgreSQL needs the table locked so
    # two first-admin forms sent at once cannot both see "no admin yet".
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE annotator IN SHARE ROW EXCLUSIVE MODE"))


def _can_sign_in(row: Annotator) -> bool:
    return row.disabled_at is None and (row.password_hash is not None or row.email is not None)


def _has_credentials(session: Session) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(Annotator)
            .where(Annotator.password_hash.is_not(None) | Annotator.email.is_not(None))
        )
        or 0
    ) > 0


def anyone_can_sign_in(db: Database) -> bool:
    """True once some enabled account has a password or an email."""
    with db.reading() as session:
        return any(_can_sign_in(row) for row in session.scalars(select(Annotator)))


def first_admin_needed(db: Database) -> bool:
    """True while no account has a password or an email: the sign-in page then offers to create
    the admin. Once any account exists (even a disabled one), admins come from an admin or the CLI."""
    with db.reading() as session:
        return not _has_credentials(session)


def create_first_admin(db: Database, *, name: str, password: str) -> Account:
    """Create the first account, an admin, on a database where no account has credentials yet."""
    password_hash = _hash_password(password)
    with db.writing() as session:
        _lock_accounts(session)
        if _has_credentials(session):
            raise UserError(
                "accounts exist already; sign in, or ask an admin for an account "
                "(or run: python -m app.cli create-user NAME --role admin)"
            )
        return _save(session, _clean_name(name), Role.ADMIN, password_hash, None)


def create_account(
    db: Database, *, name: str, role: str | Role, password: str | None = None, email: str | None = None, by: str | None
) -> Account:
    """Create an account; ``by`` names the admin doing it (None: the command line).

    A name that labeling recorded before (no password, no email) becomes this account, so
    its earlier labels stay with it. An account needs a password, an email, or both.
    """
    role, email = parse_role(role), _clean_email(email)
    if password is None and email is None:
        raise UserError("give the account a password, or the email it signs in with through the provider")
    password_hash = _hash_password(password) if password is not None else None
    with db.writing() as session:
        _lock_accounts(session)
        _require_admin(session, by)
        return _save(session, _clean_name(name), role, password_hash, email)


def _save(session: Session, name: str, role: Role, password_hash: str | None, email: str | None) -> Account:
    if email is not None:
        other = session.scalar(select(Annotator).where(Annotator.email == email))
        if other is not None:
            raise UserError(f"{email} already belongs to account {other.name!r}")
    row = session.scalar(select(Annotator).where(Annotator.name == name))
    if row is not None and (row.password_hash is not None or row.email is not None):
        raise UserError(f"an account named {name!r} exists already; pick another name or reset its password")
    if row is None:
        row = Annotator(name=name)
        session.add(row)
    row.role, row.password_hash, row.email = role, password_hash, email
    session.flush()
    return _account(row)


def authenticate(db: Database, *, name: str, password: str, throttle: SignInThrottle | None = None) -> Account:
    """The account if ``password`` is right; the same error for an unknown name or a wrong password.

    ``throttle`` (default: this process's) refuses a name after too many failures in a row.
    """
    throttle = throttle or THROTTLE
    throttle.check(name)
    with db.reading() as session:
        row = session.scalar(select(Annotator).where(Annotator.name == name.strip()))
        stored = row.password_hash if row is not None else None
        account = _account(row) if row is not None else None
    try:
        HASHER.verify(stored or _unknown_user_hash(), password[: MAX_PASSWORD_LENGTH + 1])
        if stored is None or account is None:  # only reachable if someone guessed the dummy password
            raise VerificationError
    except (VerificationError, InvalidHashError):
        throttle.failed(name)
        raise UserError(WRONG_CREDENTIALS) from None
    throttle.succeeded(name)
    if account.disabled:
        raise UserError(f"account {account.name!r} is disabled; ask an admin to enable it")
    if HASHER.check_needs_rehash(stored):
        with db.writing() as session:
            row = session.get(Annotator, account.id)
            if row is None:
                raise UserError(f"account {account.name!r} is gone; ask an admin")
            row.password_hash = HASHER.hash(password)
    return account


def account_for_email(db: Database, email: str | None) -> Account:
    """The account an admin created for this OIDC email; unknown or disabled emails are refused."""
    email = _clean_email(email)
    if email is None:
        raise UserError("the sign-in provider reported no email address; banana maps accounts by email")
    with db.reading() as session:
        row = session.scalar(select(Annotator).where(Annotator.email == email))
        if row is None:
            raise UserError(f"no account has the email {email}; ask an admin to add it on the Users page")
        account = _account(row)
    if account.disabled:
        raise UserError(f"account {account.name!r} is disabled; ask an admin to enable it")
    return account


def get_account(db: Database, account_id: int) -> Account | None:
    """The account with this id, or None if there is none."""
    with db.reading() as session:
        row = session.get(Annotator, account_id)
        return _account(row) if row is not None else None


def list_accounts(db: Database) -> list[Account]:
    """Every annotator row, accounts and names labeling recorded, by name."""
    with db.reading() as session:
        return [_account(row) for row in session.scalars(select(Annotator).order_by(Annotator.name))]


def set_password(db: Database, *, name: str, password: str, by: str | None) -> None:
    """Set ``name``'s password; ``by`` is that account itself or an admin (None: the command line)."""
    password_hash = _hash_password(password)
    with db.writing() as session:
        if by is None or by != name.strip():
            _require_admin(session, by)
        row = _row(session, name)
        row.password_hash = password_hash
        # A new password signs out every browser that remembered the old sign-in.
        session.execute(
            update(RememberedSignIn)
            .where(RememberedSignIn.annotator_id == row.id, RememberedSignIn.revoked_at.is_(None))
            .values(revoked_at=utc_now())
        )


def set_email(db: Database, *, name: str, email: str | None, by: str | None) -> None:
    """Set or clear the OIDC email of ``name``."""
    email = _clean_email(email)
    with db.writing() as session:
        _require_admin(session, by)
        row = _row(session, name)
        if email is not None:
            other = session.scalar(select(Annotator).where(Annotator.email == email, Annotator.id != row.id))
            if other is not None:
                raise UserError(f"{email} already belongs to account {other.name!r}")
        row.email = email


def change_role(db: Database, *, name: str, role: str | Role, by: str | None) -> None:
    """Give ``name`` another role; the last enabled admin keeps theirs."""
    role = parse_role(role)
    with db.writing() as session:
        _lock_accounts(session)
        _require_admin(session, by)
        row = _row(session, name)
        if (
            row.role is Role.ADMIN
            and role is not Role.ADMIN
            and row.disabled_at is None
            and _enabled_admins(session) == 1
        ):
            raise UserError(f"{row.name!r} is the only enabled admin; make another admin first")
        row.role = role


def set_disabled(db: Database, *, name: str, disabled: bool, by: str | None) -> None:
    """Disable (no sign-in; labels kept) or enable ``name``; the last enabled admin stays enabled."""
    with db.writing() as session:
        _lock_accounts(session)
        _require_admin(session, by)
        row = _row(session, name)
        if not disabled:
            row.disabled_at = None
            return
        if row.role is Role.ADMIN and row.disabled_at is None and _enabled_admins(session) == 1:
            raise UserError(f"{row.name!r} is the only enabled admin; make another admin first")
        if row.disabled_at is None:
            row.disabled_at = utc_now()
