"""`connector issuer ...`: the development issuer's commands (decision 0024).

    connector issuer init --data-dir D --public-url URL [--name NAME] [--status-ttl S]
    connector issuer participants add|remove|list [DID]
    connector issuer issue DID [--type MembershipCredential] [--days 365] [--out FILE]
    connector issuer revoke CREDENTIAL_ID
    connector issuer list [--json]                     issued credentials with their status
    connector issuer requests [--json]                 Credential Issuance Protocol requests
    connector issuer rotate-key                        new signing key (old one stays published)
    connector issuer serve [--host H] [--port P] [--allow-cidr CIDR ...]

Every command but `init` takes `--data-dir` (default `./var/issuer`). Only this module's
`add_parsers` is imported when the `connector` command builds its parser; everything else is
imported when an issuer command runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from connector.issuer.service import DevIssuer

__all__ = ["add_parsers", "run"]

DEFAULT_DATA_DIR: Final = Path("./var/issuer")
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"the issuer's data dir (default {DEFAULT_DATA_DIR})",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `issuer` command group of the `connector` parser."""
    issuer = sub.add_parser(
        "issuer",
        help="a development credential issuer for a local data space (not for production)",
        description="Issues MembershipCredentials (VC JWT, StatusList2021 revocation) to the "
        "participants of a local data space and serves the DCP 1.0 issuance protocol.",
    )
    commands = issuer.add_subparsers(dest="issuer_command", required=True)
    init = commands.add_parser("init", help="create the issuer: key ring, DID, state")
    _data_dir(init)
    init.add_argument(
        "--public-url",
        required=True,
        help="base URL the issuer is reached at, e.g. http://127.0.0.1:7100 (its did:web DID "
        "is derived from it)",
    )
    init.add_argument("--name", default="dataspace", help="data space name (memberOf)")
    init.add_argument(
        "--status-ttl",
        type=int,
        default=300,
        help="seconds a signed status list is valid: revocation takes effect within it",
    )
    participants = commands.add_parser("participants", help="who may receive credentials")
    participants_sub = participants.add_subparsers(dest="participants_command", required=True)
    for name, text in (("add", "register a participant"), ("remove", "forget a participant")):
        command = participants_sub.add_parser(name, help=text)
        _data_dir(command)
        command.add_argument("did", help="the participant's did:web DID")
    listing = participants_sub.add_parser("list", help="registered participants")
    _data_dir(listing)
    _json(listing)
    issue = commands.add_parser("issue", help="issue a credential now and print its VC JWT")
    _data_dir(issue)
    issue.add_argument("did", help="the holder (a registered participant)")
    issue.add_argument("--type", default="MembershipCredential", help="credential type")
    issue.add_argument("--days", type=int, default=365, help="validity in days")
    issue.add_argument("--out", type=Path, help="write the VC JWT to this file (mode 0600)")
    revoke = commands.add_parser("revoke", help="revoke a credential (sets its status bit)")
    _data_dir(revoke)
    revoke.add_argument("credential_id", help="urn:uuid:... as `list` shows it")
    credentials = commands.add_parser("list", help="issued credentials with their status")
    _data_dir(credentials)
    _json(credentials)
    requests = commands.add_parser("requests", help="issuance requests and their status")
    _data_dir(requests)
    _json(requests)
    rotate = commands.add_parser(
        "rotate-key",
        help="new signing key; the old one stays in the DID document so credentials it signed "
        "keep verifying (restart serve to sign with the new key)",
    )
    _data_dir(rotate)
    serve = commands.add_parser("serve", help="serve DID document, CIP endpoints, status list")
    _data_dir(serve)
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: the public URL's)")
    serve.add_argument(
        "--allow-cidr",
        action="append",
        default=[],
        help="addresses the issuer may call (holders' DID documents and storage); loopback is "
        "allowed when the public URL is a loopback address (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Run one `connector issuer` command; returns the exit code."""
    from connector.core.errors import ConnectorError
    from connector.identity.keys import InsecureKeyFileError
    from connector.issuer.config import IssuerConfigError

    try:
        return _run(args)
    except (IssuerConfigError, InsecureKeyFileError) as exc:
        print(f"connector issuer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectorError as exc:
        print(f"connector issuer: {'; '.join(exc.reasons)}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from connector.issuer.config import load_config

    command: str = args.issuer_command
    if command == "init":
        return _init(args)
    from connector.issuer.service import open_issuer, rotate_issuer_key

    if command == "rotate-key":
        ring = rotate_issuer_key(args.data_dir, now=datetime.now(UTC))
        did = load_config(args.data_dir).did
        print(f"new signing key {did}#{ring.current.key_id}")
        for entry in ring.previous:
            print(f"  still published: {did}#{entry.key_id}")
        print("restart `connector issuer serve` to sign with it")
        return 0
    issuer = open_issuer(args.data_dir)
    if command == "participants":
        return _participants(issuer, args)
    if command == "issue":
        return _issue(issuer, args)
    if command == "revoke":
        record = issuer.revoke(args.credential_id)
        print(
            f"revoked {record.credential_id} (status index {record.status_index}); verifiers "
            f"see it within {issuer.config.status_ttl_seconds} s (the status list's validity)"
        )
        return 0
    if command == "list":
        return _list(issuer, as_json=args.json)
    if command == "requests":
        return _requests(issuer, as_json=args.json)
    return _serve(issuer, args)


def _init(args: argparse.Namespace) -> int:
    from connector.identity.keys import load_or_create_keyring
    from connector.issuer.config import CONFIG_FILE, KEYS_DIR, new_config, save_config
    from connector.issuer.store import DB_FILE, IssuerStore

    data_dir: Path = args.data_dir
    if (data_dir / CONFIG_FILE).exists():
        print(f"connector issuer: {data_dir} holds an issuer already", file=sys.stderr)
        return EXIT_ERROR
    if args.status_ttl <= 0:
        print("connector issuer: --status-ttl must be positive", file=sys.stderr)
        return EXIT_USAGE
    config = new_config(
        args.public_url, args.name, datetime.now(UTC), status_ttl_seconds=args.status_ttl
    )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    ring = load_or_create_keyring(data_dir / KEYS_DIR)
    IssuerStore(data_dir / DB_FILE)
    save_config(data_dir, config)
    print(f"issuer {config.did}")
    print(f"  key       {config.did}#{ring.current.key_id}")
    print(f"  service   {config.public_url}")
    print(f"  status    {config.status_list_url}")
    print(f"  data dir  {data_dir}")
    print(
        "trust it in each connector: identity.trust.trusted_issuers, "
        f'{{"{config.did}": ["MembershipCredential"]}}'
    )
    return 0


def _check_did(did: str) -> None:
    from connector.core.errors import BadRequestError
    from connector.identity.did import InvalidDidError, did_web_to_url

    try:
        did_web_to_url(did, allow_http=True, allow_ip=True)
    except InvalidDidError as exc:
        raise BadRequestError(f"{did!r} is not a did:web DID ({exc.reasons[0]})") from None


def _participants(issuer: DevIssuer, args: argparse.Namespace) -> int:
    store = issuer.store
    command: str = args.participants_command
    if command == "add":
        _check_did(args.did)
        added = store.add_participant(args.did, issuer.clock())
        print(f"{'added' if added else 'already a participant:'} {args.did}")
        return 0
    if command == "remove":
        if not store.remove_participant(args.did):
            print(f"connector issuer: {args.did} is not a participant", file=sys.stderr)
            return EXIT_ERROR
        print(f"removed {args.did} (credentials issued to it stay valid until revoked)")
        return 0
    rows = store.participants()
    if args.json:
        print(json.dumps([{"did": d, "addedAt": a.isoformat()} for d, a in rows], indent=2))
    else:
        for did, added_at in rows:
            print(f"{did}  added {added_at.isoformat()}")
    return 0


def _issue(issuer: DevIssuer, args: argparse.Namespace) -> int:
    from connector.core.errors import ForbiddenError

    _check_did(args.did)
    if not issuer.store.is_participant(args.did):
        raise ForbiddenError(
            f"{args.did} is not a participant (connector issuer participants add {args.did})"
        )
    record = issuer.issue(args.did, args.type, days=args.days)
    if args.out is None:
        print(record.payload)
        print(f"issued {record.credential_id}", file=sys.stderr)
        return 0
    out: Path = args.out
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(record.payload + "\n")
    print(f"issued {record.credential_id} to {args.did}: {out}")
    return 0


def _status(revoked_at: datetime | None, expires_at: datetime, now: datetime) -> str:
    if revoked_at is not None:
        return "revoked"
    return "expired" if expires_at <= now else "valid"


def _list(issuer: DevIssuer, *, as_json: bool) -> int:
    now = issuer.clock()
    rows = [
        {
            "credentialId": c.credential_id,
            "holder": c.holder_did,
            "type": c.credential_type,
            "statusListIndex": c.status_index,
            "issuedAt": c.issued_at.isoformat(),
            "expiresAt": c.expires_at.isoformat(),
            "revokedAt": c.revoked_at.isoformat() if c.revoked_at else None,
            "status": _status(c.revoked_at, c.expires_at, now),
        }
        for c in issuer.store.credentials()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['credentialId']}  {row['status']:<7}  {row['type']}  {row['holder']}  "
            f"index {row['statusListIndex']}  expires {row['expiresAt']}"
        )
    return 0


def _requests(issuer: DevIssuer, *, as_json: bool) -> int:
    rows = [
        {
            "issuerPid": r.issuer_pid,
            "holderPid": r.holder_pid,
            "holder": r.holder_did,
            "credentialTypes": list(r.credential_types),
            "status": r.status.value,
            "attempts": r.attempts,
            "reason": r.reason,
            "updatedAt": r.updated_at.isoformat(),
        }
        for r in issuer.store.requests()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in issuer.store.requests():
        reason = f"  ({r.reason})" if r.reason else ""
        print(
            f"{r.issuer_pid}  {r.status.value:<8}  {r.holder_did}  "
            f"{','.join(r.credential_types)}  attempts {r.attempts}{reason}"
        )
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(issuer: DevIssuer, args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    import uvicorn

    from connector.http.outbound import GuardedHttp, OutboundConfig
    from connector.identity.did import DidResolver
    from connector.issuer.app import create_issuer_app
    from connector.issuer.writeback import StorageWriter

    public = urlsplit(issuer.config.public_url)
    cidrs = list(args.allow_cidr)
    if _is_loopback(public.hostname or ""):
        cidrs += ["127.0.0.0/8", "::1/128"]
    try:
        outbound = OutboundConfig(allow_http=issuer.config.insecure_http, allow_cidrs=tuple(cidrs))
        http = GuardedHttp(outbound)
    except ValueError as exc:
        print(f"connector issuer: --allow-cidr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    resolver = DidResolver(
        http,
        None,
        ttl=60,
        participant="issuer",
        allow_http=issuer.config.insecure_http,
        allow_ip=bool(cidrs),
    )
    app = create_issuer_app(issuer, resolver, StorageWriter(issuer, http, resolver))
    port = args.port if args.port is not None else public.port or 443
    print(f"issuer {issuer.did} on http://{args.host}:{port}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    return 0
