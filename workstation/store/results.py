"""The result store: save results atomically, read them back with every access audited.

::

    store = ResultStore.open(keys=keystore.data_keys, signer=keystore.signing_key(),
                             actor="alice")
    result_id = store.save_result(NewResult(study=StudyRef(pseudonym), ...))
    store.get_result(result_id)            # audited "result.view"
    store.read_map(map_id)                 # audited "map.view"
    store.audit.verify(trusted=[keystore.signing_key().public_key])

One transaction per call: a result, its findings, its map chunks, the audit event and (with
``sync=True``) the outbox entry commit together or not at all. Maps are stored encrypted in
``CHUNK_SIZE`` rows inside the database rather than as files beside it: one commit covers
everything (no orphan or missing files after a crash, no second fsync path), PostgreSQL works
the same, and a reader streams a map chunk by chunk. Each chunk is bound to its map and index.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload, sessionmaker

from workstation.security import aead
from workstation.store._time import Clock, format_time, utcnow
from workstation.store.audit import DEFAULT_CHECKPOINT_EVERY, AuditTrail
from workstation.store.crypto import Cipher, kind_of
from workstation.store.engine import create_engine, migrate
from workstation.store.errors import NotFoundError, RecordCorruptError, translated
from workstation.store.local import Outbox, Users
from workstation.store.models import (
    ENCRYPTED_COLUMNS,
    Analysis,
    ExplanationMap,
    Finding,
    MapChunk,
    OutboxEntry,
    Study,
)
from workstation.store.records import (
    NewResult,
    Result,
    ResultSummary,
    StoredFinding,
    StoredMap,
)

if TYPE_CHECKING:
    from workstation.security.sign import HybridSigningKey

__all__ = ["CHUNK_SIZE", "ResultStore"]

CHUNK_SIZE = 1 << 20
_PURPOSES = ("view", "export")


def _new_id() -> str:
    return str(uuid.uuid4())


class ResultStore:
    """Encrypted results, audited reads, and the ciphertext source for key rotation.

    Parameters
    ----------
    engine
        Where the data lives (:func:`workstation.store.create_engine`); injected, never global.
    keys
        The data key ring, or a callable returning it (``keystore.data_keys``, so a rotation is
        seen at once).
    actor
        Who acts (the signed-in local user's name): written on every audit event.
    signer
        The workstation's signing key for audit checkpoints (``keystore.signing_key()``).
    checkpoint_every
        Audit events between signed checkpoints.
    clock
        Returns the current time (timezone-aware); injected for tests.
    migrate_schema
        Bring the schema to the newest revision first (default).
    """

    def __init__(
        self,
        engine: Engine,
        keys: aead.DataKeyRing | Callable[[], aead.DataKeyRing],
        *,
        actor: str,
        signer: HybridSigningKey | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        clock: Clock = utcnow,
        migrate_schema: bool = True,
        _cipher: Cipher | None = None,
    ) -> None:
        if not actor:
            raise ValueError("actor must name who acts")
        if migrate_schema:
            migrate(engine)
        self.engine = engine
        self.actor = actor
        self._cipher = _cipher if _cipher is not None else Cipher(keys)
        self._clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.audit = AuditTrail(
            engine, signer=signer, checkpoint_every=checkpoint_every, clock=clock
        )
        self.users = Users(self._sessions, self._record, clock)
        self.outbox = Outbox(self._sessions, self._cipher, clock)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        keys: aead.DataKeyRing | Callable[[], aead.DataKeyRing],
        actor: str,
        **kwargs: Any,
    ) -> ResultStore:
        """Open (creating and migrating) the store at ``url``, default ``<home>/store``."""
        return cls(create_engine(url), keys, actor=actor, **kwargs)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return format_time(self._clock())

    def _record(
        self,
        session: Session,
        action: str,
        object_type: str,
        object_id: str,
        study: str | None = None,
        **details: Any,
    ) -> int:
        return self.audit.append(
            session.connection(),
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            study=study,
            details=details,
        )

    # -- writing --------------------------------------------------------------------------

    def save_result(self, result: NewResult, *, sync: bool = False) -> str:
        """Save an analysis with its findings and maps in one transaction; returns its id.

        With ``sync=True`` an outbox entry (idempotency key ``result:<id>``) is written in the
        same transaction. Raises :class:`StoreError` subclasses; nothing is saved then.
        """
        seal, seal_json = self._cipher.seal, self._cipher.seal_json
        analysis_id, now = _new_id(), self._now()
        pseudonym = result.study.pseudonym
        with translated("saving a result"), self._sessions.begin() as session:
            self.audit.lock(session.connection())
            study = session.scalars(sa.select(Study).where(Study.pseudonym == pseudonym)).first()
            if study is None:
                study = Study(id=_new_id(), pseudonym=pseudonym, first_seen=now)
                session.add(study)
            if result.study.identifiers and study.identifiers is None:
                ids = dict(result.study.identifiers)
                study.identifiers = seal_json(ids, "studies", study.id, "identifiers")
            session.add(
                Analysis(
                    id=analysis_id,
                    study_id=study.id,
                    model_name=result.model_name,
                    model_version=result.model_version,
                    input_hash=result.input_hash,
                    parameters=seal_json(
                        dict(result.parameters), "analyses", analysis_id, "parameters"
                    ),
                    created=now,
                    created_by=self.actor,
                    finding_count=len(result.findings),
                    map_count=len(result.maps),
                )
            )
            for ordinal, finding in enumerate(result.findings):
                finding_id = _new_id()
                content = {"label": finding.label, "text": finding.text, "values": finding.values}
                session.add(
                    Finding(
                        id=finding_id,
                        analysis_id=analysis_id,
                        ordinal=ordinal,
                        content=seal_json(content, "findings", finding_id, "content"),
                    )
                )
            for ordinal, new_map in enumerate(result.maps):
                map_id, view = _new_id(), memoryview(new_map.data).cast("B")
                starts = range(0, view.nbytes, CHUNK_SIZE)
                session.add(
                    ExplanationMap(
                        id=map_id,
                        analysis_id=analysis_id,
                        ordinal=ordinal,
                        method=new_map.method,
                        size=view.nbytes,
                        chunk_count=len(starts),
                        meta=seal_json(dict(new_map.meta), "explanation_maps", map_id, "meta"),
                    )
                )
                for index, start in enumerate(starts):
                    chunk_id = f"{map_id}/{index}"
                    data = seal(view[start : start + CHUNK_SIZE], "map_chunks", chunk_id, "data")
                    session.add(MapChunk(id=chunk_id, map_id=map_id, index=index, data=data))
            if sync:
                session.add(
                    OutboxEntry(
                        id=_new_id(),
                        idempotency_key=f"result:{analysis_id}",
                        kind="result",
                        object_id=analysis_id,
                        state="pending",
                        attempts=0,
                        next_attempt=now,
                        created=now,
                    )
                )
            session.flush()
            self._record(
                session,
                "result.save",
                "analysis",
                analysis_id,
                pseudonym,
                model=result.model_name[:200],
                version=result.model_version[:200],
                findings=len(result.findings),
                maps=len(result.maps),
            )
        return analysis_id

    # -- reading (audited) ----------------------------------------------------------------

    def list_results(
        self, *, study: str | None = None, limit: int | None = None
    ) -> list[ResultSummary]:
        """Summaries, newest first (nothing decrypted); audited ``result.list``."""
        query = (
            sa.select(Analysis, Study.pseudonym)
            .join(Study)
            .order_by(Analysis.created.desc(), Analysis.id)
            .limit(limit)
        )
        if study is not None:
            query = query.where(Study.pseudonym == study)
        with translated("listing results"), self._sessions.begin() as session:
            rows = session.execute(query).all()
            self._record(session, "result.list", "analysis", "*", study, count=len(rows))
        return [
            ResultSummary(
                id=a.id,
                study=pseudonym,
                model_name=a.model_name,
                model_version=a.model_version,
                created=a.created,
                created_by=a.created_by,
                finding_count=a.finding_count,
                map_count=a.map_count,
            )
            for a, pseudonym in rows
        ]

    def get_result(self, result_id: str, *, purpose: str = "view") -> Result:
        """The decrypted result (map headers only); audited ``result.view`` / ``result.export``.

        Raises
        ------
        NotFoundError
            No result with that id.
        RecordCorruptError
            A part does not decrypt (wrong key, moved or tampered ciphertext), or parts are
            missing.
        """
        if purpose not in _PURPOSES:
            raise ValueError(f"purpose must be one of {_PURPOSES}")
        open_json = self._cipher.open_json
        with translated("reading a result"), self._sessions.begin() as session:
            analysis = session.scalars(
                sa.select(Analysis)
                .where(Analysis.id == result_id)
                .options(
                    selectinload(Analysis.findings),
                    selectinload(Analysis.maps),
                    selectinload(Analysis.study),
                )
            ).first()
            if analysis is None:
                raise NotFoundError(f"no result with id {result_id}")
            if (len(analysis.findings), len(analysis.maps)) != (
                analysis.finding_count,
                analysis.map_count,
            ):
                raise RecordCorruptError(f"result {result_id} has findings or maps missing")
            findings = []
            for finding in analysis.findings:
                content = open_json(finding.content, "findings", finding.id, "content")
                findings.append(StoredFinding(finding.id, **content))
            maps = tuple(
                StoredMap(
                    m.id, m.method, m.size, open_json(m.meta, "explanation_maps", m.id, "meta")
                )
                for m in analysis.maps
            )
            out = Result(
                id=analysis.id,
                study=analysis.study.pseudonym,
                model_name=analysis.model_name,
                model_version=analysis.model_version,
                input_hash=analysis.input_hash,
                parameters=open_json(analysis.parameters, "analyses", analysis.id, "parameters"),
                created=analysis.created,
                created_by=analysis.created_by,
                findings=tuple(findings),
                maps=maps,
            )
            self._record(session, f"result.{purpose}", "analysis", result_id, out.study)
        return out

    def read_map(self, map_id: str, *, purpose: str = "view") -> bytes:
        """A map's decrypted bytes; audited ``map.view`` / ``map.export``."""
        if purpose not in _PURPOSES:
            raise ValueError(f"purpose must be one of {_PURPOSES}")
        with translated("reading a map"), self._sessions.begin() as session:
            header = session.execute(
                sa.select(ExplanationMap.size, ExplanationMap.chunk_count, Study.pseudonym)
                .join(Analysis, ExplanationMap.analysis_id == Analysis.id)
                .join(Study)
                .where(ExplanationMap.id == map_id)
            ).first()
            if header is None:
                raise NotFoundError(f"no map with id {map_id}")
            rows = session.execute(
                sa.select(MapChunk.data).where(MapChunk.map_id == map_id).order_by(MapChunk.index)
            ).scalars()
            parts = [
                self._cipher.open(sealed, "map_chunks", f"{map_id}/{index}", "data")
                for index, sealed in enumerate(rows)
            ]
            data = b"".join(parts)
            if len(parts) != header.chunk_count or len(data) != header.size:
                raise RecordCorruptError(f"map {map_id} is incomplete (chunks missing)")
            self._record(session, f"map.{purpose}", "map", map_id, header.pseudonym)
        return data

    # -- key rotation (CiphertextSource) --------------------------------------------------

    def blobs(self) -> Iterator[tuple[str, str, bytes]]:
        """Every ``(kind, record_id, blob)`` held: the key store's ``CiphertextSource``."""
        for model, column in ENCRYPTED_COLUMNS:
            table = model.__table__
            query = sa.select(table.c.id, table.c[column]).where(table.c[column].is_not(None))
            with translated("listing ciphertexts"), self.engine.connect() as connection:
                for row_id, sealed in connection.execution_options(yield_per=500).execute(query):
                    yield kind_of(table.name, column), row_id, sealed.blob

    def key_versions(self) -> dict[int, int]:
        """How many ciphertexts are under each data key version."""
        counts = collections.Counter(aead.key_version(blob) for _k, _r, blob in self.blobs())
        return dict(sorted(counts.items()))

    def rewrap(self, *, batch: int = 200) -> int:
        """Re-encrypt every ciphertext not under the current data key; returns how many.

        Each batch commits on its own, so an interrupted pass can simply run again. Audited
        ``keys.rewrap``.
        """
        total = 0
        for model, column in ENCRYPTED_COLUMNS:
            table = model.__table__
            after = ""
            while True:
                with translated("re-wrapping ciphertexts"), self._sessions.begin() as session:
                    rows = session.execute(
                        sa.select(table.c.id, table.c[column])
                        .where(table.c.id > after, table.c[column].is_not(None))
                        .order_by(table.c.id)
                        .limit(batch)
                    ).all()
                    for row_id, sealed in rows:
                        new = self._cipher.rewrap(sealed, table.name, row_id, column)
                        if new is not None:
                            session.execute(
                                sa.update(table).where(table.c.id == row_id).values({column: new})
                            )
                            total += 1
                if len(rows) < batch:
                    break
                after = rows[-1][0]
        with translated("writing the audit trail"), self._sessions.begin() as session:
            version = self._cipher.ring.current
            self._record(session, "keys.rewrap", "data_key", str(version), rewrapped=total)
        return total
