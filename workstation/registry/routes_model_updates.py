"""Model updates: signed model metadata, per-site model assignments, and workstations' reports.

Metadata (TUF-style, see :mod:`workstation.security.model_metadata`): an admin uploads targets
signed offline by the trust root's ``model`` role (``PUT /models/metadata/targets``); the
registry checks them with the workstation's own verifier (threshold of ``model`` keys, not
expired, a higher version than the stored targets and no model's newest version going back;
else 409 ``rollback``), then issues a snapshot (next version, 7 days) and a timestamp (next version,
1 day) signed with its ``registry`` role key (``settings.registry_key``, ``serve
--registry-key FILE``). ``GET /models/metadata/{timestamp,snapshot,targets}.json`` serves the
exact stored bytes to any signed-in identity (metadata is not secret). Serving
``timestamp.json`` re-issues it first (version + 1, 1 day) when it expires within 12 hours, and
re-issues the snapshot as well when that expires within 1 day, so an idle registry never
freezes its clients; without a (trusted) registry key the stored documents are served as they
are (a warning is logged) and the clients judge their expiry.

Assignments (``PUT /admin/models/assignments``, ``GET /models/assignments``): which version of
a model runs at which stage (``shadow`` | ``canary`` with a ``share`` | ``active``), for one site
or for all (``site_id`` null); a site's own assignment wins over the global one for a name.

Reports (``POST /models/reports``, workstations only) are aggregates — counts, rates, latency —
with no patient field; ``GET /admin/models/metrics`` sums them per model, version and site.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from workstation.registry import audit
from workstation.registry import model_metadata as meta
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import DbSession, Identity, require
from workstation.registry.models import ModelAssignment, ModelMetadata, ModelReport, Role, Site

__all__ = ["EVENTS", "STAGES", "router"]

router = APIRouter(tags=["model updates"])

STAGES = ("shadow", "canary", "active")
EVENTS = (
    "shadow.agreement",
    "canary.rollback",
    "canary.promoted",
    "gates.failed",
    "gates.passed",
    "installed",
    "metrics",
)
MAX_METADATA_BYTES = 16 * 1024 * 1024
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

Admin = Annotated[Identity, Depends(require(Role.ADMIN))]
Anyone = Annotated[
    Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.VIEWER, Role.WORKSTATION))
]
WorkstationOnly = Annotated[Identity, Depends(require(Role.WORKSTATION))]


# -- metadata ----------------------------------------------------------------------------------


@router.put(
    "/models/metadata/targets",
    status_code=201,
    summary="Publish signed model targets; the registry signs a new snapshot and timestamp",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "the targets document exactly as signed by the model role",
        }
    },
)
async def publish_targets(request: Request, identity: Admin) -> dict[str, int]:
    """The body is the targets document exactly as signed by the ``model`` role."""
    from workstation.security._model_metadata_checks import (
        TARGETS,
        MetadataError,
        check_not_expired,
        check_targets_forward,
        parse,
    )
    from workstation.security.trust import now_or

    raw = await request.body()
    if len(raw) > MAX_METADATA_BYTES:
        raise HTTPException(413, detail="the targets metadata is too large")
    settings = request.app.state.settings
    trust = meta.trust(settings)
    now = now_or(None)
    try:
        document = parse(TARGETS, raw, trust, now)
        check_not_expired(document, now)
    except MetadataError as error:
        raise HTTPException(422, detail=f"the targets were refused: {error}") from None
    key = meta.registry_key(settings)
    try:
        with request.app.state.db.sessions.begin() as session:
            rows = meta.stored(session, lock=True)
            if "targets" in rows:
                old = rows["targets"]
                if document.version <= old.version:
                    raise HTTPException(
                        409,
                        detail=f"rollback: targets version {document.version} is not above "
                        f"the published version {old.version}",
                    )
                try:
                    check_targets_forward(document, meta.document(old))
                except MetadataError as error:
                    raise HTTPException(409, detail=str(error)) from None
            meta.put(session, rows, "targets", raw)
            meta.issue(session, rows, key, trust, now, snapshot=True)
            versions = {f"{role}_version": rows[role].version for role in meta.ROLES}
            audit.record(
                session,
                actor=identity.actor,
                action="metadata.publish",
                object_type="model-metadata",
                object_id="targets",
                details=versions,
            )
    except IntegrityError:  # a concurrent first publish
        raise HTTPException(409, detail="rollback: targets were published concurrently") from None
    return versions


@router.get(
    "/models/metadata/{role}.json",
    summary="Signed model metadata: timestamp, snapshot or targets (raw bytes)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 404: {"description": "none yet"}},
)
def get_metadata(request: Request, identity: Anyone, role: str) -> Response:
    """The exact stored document; ``timestamp`` is re-issued first when it expires soon."""
    from workstation.security.trust import now_or

    if role not in meta.ROLES:
        raise HTTPException(
            404, detail=f"no metadata role {role!r} (one of {', '.join(meta.ROLES)})"
        )
    if role == "timestamp":
        meta.renew(request.app.state.db, request.app.state.settings, now_or(None))
    with request.app.state.db.sessions() as session:
        row = session.get(ModelMetadata, role)
        if row is None:
            raise HTTPException(404, detail="no model metadata has been published yet")
        raw = row.raw
    return Response(raw, media_type="application/json", headers={"Cache-Control": "no-store"})


# -- assignments -------------------------------------------------------------------------------


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    version: str = Field(min_length=1, max_length=50)
    site_id: str | None = Field(default=None, max_length=36)
    stage: Literal["shadow", "canary", "active"]
    share: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)


def _assignment(row: ModelAssignment) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "site_id": row.site_id,
        "stage": row.stage,
        "share": row.share,
        "updated": row.updated,
    }


@router.put("/admin/models/assignments", summary="Assign a model version and stage (admins)")
def put_assignment(body: AssignmentIn, identity: Admin, session: DbSession) -> dict[str, Any]:
    """Create or replace the assignment of ``name`` for ``site_id`` (null: all sites)."""
    from workstation.security.bundle import Version
    from workstation.security.errors import BundleError

    try:
        Version.parse(body.version)
    except BundleError as error:
        raise HTTPException(422, detail=f"version: {error}") from None
    try:
        with session.begin():
            if body.site_id is not None and session.get(Site, body.site_id) is None:
                raise HTTPException(422, detail="no such site")
            site = ModelAssignment.site_id
            row = session.scalars(
                sa.select(ModelAssignment).where(
                    ModelAssignment.name == body.name,
                    site.is_(None) if body.site_id is None else site == body.site_id,
                )
            ).first()
            if row is None:
                row = ModelAssignment(id=new_id(), name=body.name, site_id=body.site_id)
                session.add(row)
            row.version, row.stage, row.share = body.version, body.stage, body.share
            row.updated, row.updated_by = stamp(), identity.actor
            session.flush()
            audit.record(
                session,
                actor=identity.actor,
                action="model.assign",
                object_type="model",
                object_id=body.name,
                details={
                    "version": body.version,
                    "site_id": body.site_id,
                    "stage": body.stage,
                    "share": str(body.share),
                },
            )
    except IntegrityError:
        raise HTTPException(409, detail="the assignment was changed concurrently") from None
    return _assignment(row)


@router.get("/models/assignments", summary="Model assignments in effect")
def list_assignments(
    identity: Anyone,
    session: DbSession,
    site_id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """Admins: every assignment, or with ``site_id`` the ones in effect at that site. Others:
    the ones in effect at their site — its own and the global ones, its own winning per name."""
    if identity.role is not Role.ADMIN:
        if site_id is not None and site_id != identity.site_id:
            raise HTTPException(403, detail="another site's assignments")
        site_id = identity.site_id
    stmt = sa.select(ModelAssignment).order_by(ModelAssignment.name, ModelAssignment.site_id)
    if identity.role is Role.ADMIN and site_id is None:
        return {"items": [_assignment(r) for r in session.scalars(stmt)]}
    own = ModelAssignment.site_id == site_id
    effective: dict[str, ModelAssignment] = {}
    for row in session.scalars(stmt.where(sa.or_(ModelAssignment.site_id.is_(None), own))):
        if row.name not in effective or row.site_id is not None:
            effective[row.name] = row
    return {"items": [_assignment(effective[n]) for n in sorted(effective)]}


# -- reports and metrics -----------------------------------------------------------------------

_Rate = Annotated[float | None, Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)]


class ReportIn(BaseModel):
    """An aggregate report; there is deliberately no field that could carry patient data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    version: str = Field(min_length=1, max_length=50)
    stage: Literal["shadow", "canary", "active"]
    event: Literal[
        "shadow.agreement",
        "canary.rollback",
        "canary.promoted",
        "gates.failed",
        "gates.passed",
        "installed",
        "metrics",
    ]
    n: int = Field(default=0, ge=0, le=2**31 - 1)
    agreement: _Rate = None
    latency_p95_s: float | None = Field(default=None, ge=0.0, le=86400.0, allow_inf_nan=False)
    error_rate: _Rate = None
    detail: str = Field(default="", max_length=200)


@router.post("/models/reports", status_code=201, summary="Report on a model (workstations)")
def post_report(body: ReportIn, identity: WorkstationOnly, session: DbSession) -> dict[str, str]:
    if identity.site_id is None:
        raise HTTPException(403, detail="the workstation has no site")
    row = ModelReport(
        id=new_id(),
        site_id=identity.site_id,
        workstation_id=identity.id,
        time=stamp(),
        **body.model_dump(),
    )
    with session.begin():
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=identity.actor,
            action="model.report",
            object_type="model",
            object_id=body.name,
            details={"version": body.version, "stage": body.stage, "event": body.event},
        )
    return {"id": row.id}


class _Group:
    """Running sums of one (name, version, site)."""

    def __init__(self) -> None:
        self.reports = self.n = self.rollbacks = 0
        self.agreement = [0.0, 0]  # n-weighted sum, weight
        self.error_rate = [0.0, 0]
        self.latency: float | None = None
        self.last_event: str | None = None
        self.last_time: str | None = None

    def add(self, r: Any) -> None:
        self.reports += 1
        self.n += r.n
        self.rollbacks += r.event == "canary.rollback"
        for total, value in ((self.agreement, r.agreement), (self.error_rate, r.error_rate)):
            if value is not None:
                total[0] += value * r.n
                total[1] += r.n
        if r.latency_p95_s is not None:
            self.latency = max(self.latency or 0.0, r.latency_p95_s)
        if self.last_time is None or r.time >= self.last_time:
            self.last_event, self.last_time = r.event, r.time

    def out(self) -> dict[str, Any]:
        def mean(total: list[Any]) -> float | None:
            return total[0] / total[1] if total[1] else None

        return {
            "reports": self.reports,
            "n": self.n,
            "agreement": mean(self.agreement),
            "latency_p95_s": self.latency,
            "error_rate": mean(self.error_rate),
            "rollbacks": self.rollbacks,
            "last_event": self.last_event,
            "last_time": self.last_time,
        }


@router.get("/admin/models/metrics", summary="Model reports summed per model, version, site")
def model_metrics(
    identity: Admin,
    session: DbSession,
    name: Annotated[str | None, Query(max_length=100)] = None,
    site_id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """Per (name, version, site): reports, total ``n``, n-weighted mean agreement and error
    rate (null without data), the highest p95 latency, canary rollbacks, and the last event."""
    r = ModelReport
    stmt = sa.select(
        r.name, r.version, r.site_id, r.event, r.n, r.agreement, r.latency_p95_s,
        r.error_rate, r.time,
    )  # fmt: skip
    if name is not None:
        stmt = stmt.where(r.name == name)
    if site_id is not None:
        stmt = stmt.where(r.site_id == site_id)
    groups: dict[tuple[str, str, str], _Group] = {}
    for row in session.execute(stmt.order_by(r.time, r.id)):
        groups.setdefault((row.name, row.version, row.site_id), _Group()).add(row)
    items = [
        {"name": k[0], "version": k[1], "site_id": k[2], **groups[k].out()} for k in sorted(groups)
    ]
    return {"items": items}
