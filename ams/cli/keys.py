"""``ams keys``: list what a keystore.conf gives, import certificates and PKCS#12 identities, and
make a key with a certificate request for a CA (what ``runmqakm`` and ``keytool`` do for IBM MQ).

Passwords come from the environment (``AMS_KEY_PASSWORD`` for a new key, ``AMS_P12_PASSWORD``
for a PKCS#12) or a prompt, never from the command line, and are never printed.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import sys
from pathlib import Path

from ams._files import PRIVATE_FILE_MODE, check_absent, write_new_file
from ams.errors import KeystoreError, UsageError
from ams.keys import Keystore
from ams.keys.importing import Store, import_certificates, import_pkcs12, read_certificates, read_pkcs12
from ams.keys.inventory import Entry, inventory
from ams.keys.loading import default_conf_path
from ams.keys.requests import pem_keystore_conf, request_for_file, request_on_token

KEY_PASSWORD = "AMS_KEY_PASSWORD"
P12_PASSWORD = "AMS_P12_PASSWORD"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    keys = commands.add_parser("keys", help="list, import and request keys and certificates (as runmqakm/keytool)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    listing = actions.add_parser("list", help="the identity, trusted CAs and certificates a keystore.conf gives")
    _conf_option(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object instead of text")
    listing.set_defaults(run=run_list)
    cert = actions.add_parser("import-cert", help="a PEM or DER certificate (or bundle) into the keystore's store")
    cert.add_argument("file", type=Path, help="the certificate file (a CA's, a partner's, or your own from the CA)")
    _conf_option(cert)
    cert.set_defaults(run=run_import_cert)
    p12 = actions.add_parser(
        "import-p12", help=f"a PKCS#12 identity into the keystore (password from ${P12_PASSWORD} or a prompt)"
    )
    p12.add_argument("file", type=Path, help="the PKCS#12 (.p12/.pfx) with a key, its certificate and CA chain")
    _conf_option(p12)
    p12.set_defaults(run=run_import_p12)
    _register_request(actions)


def _conf_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystore-conf",
        type=Path,
        default=None,
        help="keystore.conf (default: $MQS_KEYSTORE_CONF, else ~/.mqs/keystore.conf)",
    )


def _register_request(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    request = actions.add_parser(
        "request",
        help=f"a new RSA key and a PKCS#10 request for your CA (key passphrase from ${KEY_PASSWORD} or a prompt)",
    )
    request.add_argument("--subject", required=True, help="the DN to request, e.g. CN=alice,O=AMS,C=GB")
    request.add_argument("--out-csr", required=True, type=Path, help="where to write the request (PEM)")
    request.add_argument("--out-key", type=Path, default=None, help="where to write the new key (PEM, mode 0600)")
    request.add_argument("--key-size", type=int, default=3072, help="RSA key size in bits (default 3072)")
    request.add_argument("--no-encrypt", action="store_true", help="write the key unencrypted (not recommended)")
    request.add_argument(
        "--write-conf", type=Path, default=None, help="also write a keystore.conf (mode 0600) for the key and its CA"
    )
    request.add_argument(
        "--keystore-conf", type=Path, default=None, help="make the key on this keystore.conf's PKCS#11 token instead"
    )
    request.add_argument("--label", default=None, help="the key's label on the token (with --keystore-conf)")
    request.set_defaults(run=run_request)


def _conf(args: argparse.Namespace) -> Path:
    path: Path = args.keystore_conf or default_conf_path()
    if not path.exists():
        raise KeystoreError(
            f"no keystore.conf at {path} ({'--keystore-conf' if args.keystore_conf else 'the default location'}): "
            "name one with --keystore-conf, or make one with ams keys request --write-conf"
        )
    return path


def _print_entry(item: Entry) -> None:
    print(f"{item.role}: {item.subject}")
    print(f"  issuer     {item.issuer}")
    print(f"  serial     {item.serial:#x}    key {item.key}")
    print(f"  valid      {item.not_before:%Y-%m-%d %H:%M} to {item.not_after:%Y-%m-%d %H:%M} UTC ({item.status})")
    print(f"  sha256     {item.sha256}")
    if item.warning:
        print(f"  warning:   {item.warning}")


def run_list(args: argparse.Namespace) -> int:
    """``ams keys list``: the exit status (0 done, 1 a certificate is expired or not yet valid, 2 configuration)."""
    path = _conf(args)
    with Keystore.from_conf(path) as keystore:
        entries = inventory(keystore)
    problems = [e for e in entries if e.status in ("expired", "not yet valid")]
    if args.json:
        print(json.dumps({"keystore_conf": str(path), "certificates": [e.as_json() for e in entries]}, indent=2))
        return 1 if problems else 0
    print(f"keystore.conf {path}: {len(entries)} certificate{'s' if len(entries) != 1 else ''}")
    if not any(e.role == "identity" for e in entries):
        print("no identity: this keystore can only send confidentiality-only messages")
    for item in entries:
        _print_entry(item)
    for item in problems:
        print(f"ams: {item.role} {item.subject}: {item.warning}", file=sys.stderr)
    return 1 if problems else 0


def run_import_cert(args: argparse.Namespace) -> int:
    """``ams keys import-cert``: the exit status (0 imported, 2 refused with the reason)."""
    store = Store.of(_conf(args))
    now = datetime.datetime.now(datetime.UTC)
    for line in import_certificates(store, read_certificates(args.file), now):
        print(line)
    return 0


def _secret(variable: str, prompt: str, *, confirm: bool) -> str:
    """A password from ``$variable``, else from the terminal; never from the command line."""
    value = os.environ.get(variable)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise UsageError(f"{prompt}: set {variable} or run this on a terminal to be asked (no password was given)")
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != first:
        raise UsageError(f"{prompt}: the two entries differ; nothing was written")
    return first


def run_import_p12(args: argparse.Namespace) -> int:
    """``ams keys import-p12``: the exit status (0 imported, 2 refused with the reason)."""
    store = Store.of(_conf(args))
    data = read_pkcs12(args.file)
    password = _secret(P12_PASSWORD, f"password of {args.file}", confirm=False)
    for line in import_pkcs12(store, data, password, datetime.datetime.now(datetime.UTC)):
        print(line)
    return 0


def run_request(args: argparse.Namespace) -> int:
    """``ams keys request``: the exit status (0 written, 2 usage or configuration)."""
    if args.keystore_conf is not None:
        return _request_on_token(args)
    if args.out_key is None:
        raise UsageError("ams keys request needs --out-key (a key file) or --keystore-conf with --label (a token)")
    password = None if args.no_encrypt else _secret(KEY_PASSWORD, "passphrase for the new key", confirm=True)
    if password is not None and (not password or password != password.strip() or "\n" in password):
        raise UsageError("the key's passphrase must be non-empty, without leading or trailing spaces or line breaks")
    conf_text, certificate = pem_keystore_conf(args.out_key, password) if args.write_conf else ("", None)
    if args.write_conf:
        check_absent([args.write_conf])
    request_for_file(
        args.subject, args.out_key, args.out_csr, bits=args.key_size, password=password.encode() if password else None
    )
    if args.write_conf:
        write_new_file(args.write_conf, conf_text.encode(), mode=PRIVATE_FILE_MODE, error=KeystoreError)
    print(f"key {args.out_key} ({args.key_size}-bit RSA, {'unencrypted' if password is None else 'encrypted'}, 0600)")
    print(f"request {args.out_csr} for {args.subject}: send it to your CA")
    if certificate is not None:
        print(f"keystore.conf {args.write_conf}: its certificate goes to {certificate} (ams keys import-cert)")
    return 0


def _request_on_token(args: argparse.Namespace) -> int:
    if not args.label:
        raise UsageError("a key on a token needs --label (the name AMS finds it by: pkcs11.certificate)")
    store = Store.of(_conf(args))
    if store.kind != "pkcs11":
        raise UsageError(f"{store.conf} names no PKCS#11 token (pkcs11.library): use --out-key for a key file")
    pin = store.password("pkcs11.token_pin")
    request_on_token(store.settings, pin, args.subject, args.label, args.out_csr, bits=args.key_size)
    print(f"key {args.label!r} made on token {store.settings.get('pkcs11.token')!r} ({args.key_size}-bit RSA)")
    print(f"request {args.out_csr} for {args.subject}: send it to your CA")
    return 0
