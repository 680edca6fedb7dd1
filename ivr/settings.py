"""Settings: one typed object read from the environment (and a .env file), nothing else reads os.environ."""

import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ORG_NAME = "Kensington and Chelsea Social Council"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    secret_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = None
    public_base_url: str | None = None
    # Reverse proxies (or tunnels) in front of the app, each adding to X-Forwarded-For: the client's address
    # is taken from there. 0 when clients reach the app directly (the header is then never believed).
    proxy_hops: int = Field(default=1, ge=0)
    staff_transfer_number: str | None = None
    org_name: str = DEFAULT_ORG_NAME
    # The languages the line offers besides English, by their codes in templates/prompts/languages.toml
    # ("ar,es"). None by default: a language goes live only once a qualified translator has reviewed its words.
    line_languages: str = ""
    # The organisation's ODS code, by which other systems know whose register `flask register export` writes.
    # Unset by default: no code belongs to the default organisation, and a register under another's code would
    # be merged as theirs, so the export refuses until it is set.
    org_ods_code: str | None = None
    # Seconds the REST client waits for Twilio before the outbox retries later.
    twilio_timeout_seconds: float = 5.0
    # Hours the outbox keeps retrying a text (a code stops sooner, when it expires); then it fails and a
    # confirmation that never went becomes a follow-up for staff.
    text_give_up_hours: float = Field(default=24.0, gt=0)
    # Logs: text on a terminal and JSON lines elsewhere (auto), or always one of them.
    log_format: Literal["auto", "text", "json"] = "auto"
    # `flask retention apply` removes conversation steps and delivered texts older than this.
    retention_days: int = 400
    # By text, let a message from the mobile on record prove who someone is without a code. Off: the sender's
    # number can be spoofed, so by default a code is always texted to the mobile on record and checked first.
    sms_trust_sender_number: bool = False
    # MESH, through which `flask register national` asks NHS England's Check for National Data Opt-outs service.
    # The URL of the MESH API (NHS England's, or mesh-sandbox's on loopback), our mailbox, its password and the
    # environment's shared key (NHS England gives each with the mailbox); unset: the national check is off.
    mesh_url: str | None = None
    mesh_mailbox: str | None = None
    mesh_password: str | None = None
    mesh_shared_key: str | None = None
    # The mailbox's client certificate and its private key (PEM files), for MESH's mutual TLS.
    mesh_client_cert: str | None = None
    mesh_client_key: str | None = None
    # The CA bundle MESH's server certificate is checked against (unset: the system's); MESH_VERIFY=false checks
    # nothing, for a sandbox over https with a self-signed certificate only.
    mesh_ca_cert: str | None = None
    mesh_verify: bool = True
    # NHS England's mailbox for the check, and the workflow a request is sent with.
    national_check_mailbox: str = "X26HC036"
    national_check_workflow: str = "SPINE_NTT_UPHOLDING"
    # How old a national reply may be and still be applied. The national policy lets a reply be kept only as a
    # short-lived cache, because people set and lift national opt-outs every day: a day means a data set is
    # applied with opt-outs at most a day behind (the reply itself takes about an hour to come), and a run on
    # a later day asks again.
    national_reply_max_age_hours: float = Field(default=24.0, gt=0)

    @property
    def can_send_texts(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)

    @property
    def can_use_mesh(self) -> bool:
        return bool(self.mesh_url and self.mesh_mailbox and self.mesh_password and self.mesh_shared_key)

    def resolve_defaults(self, instance_path: Path) -> "Settings":
        """Fill what the environment left unset from the instance folder, creating it on first run.

        The folder holds the secret key and the SQLite database: made, it is the owner's alone.
        """
        instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        updates: dict[str, str] = {}
        if not self.database_url:
            updates["database_url"] = f"sqlite:///{instance_path / 'optout.sqlite'}"
        if not self.secret_key:
            updates["secret_key"] = _kept_secret(instance_path / "secret_key")
        return self.model_copy(update=updates)

    def webhook_auth_token(self, instance_path: Path) -> str:
        """The token webhooks are signed with: Twilio's, or without an account a local one the terminal phone shares."""
        if self.twilio_auth_token:
            return self.twilio_auth_token
        return _kept_secret(instance_path / "local_twilio_auth_token")


def _kept_secret(path: Path) -> str:
    """The secret kept at `path`, made on first use: written whole and readable by its owner alone from the
    start, and never replaced by another process making it at the same moment."""
    if not path.exists():
        descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(draft)
    return path.read_text().strip()
