"""From a route of the configuration to a running mover, and the checks ``ams proxy check`` makes
before anything moves: keystores, policies, queue managers, queues, recipients' certificates, and
whether the identities fit the policies."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from ams._files import read_bounded
from ams.algorithms import QoP
from ams.errors import AmsError, ConfigurationError
from ams.keys import Keystore
from ams.limits import DEFAULT_LIMITS
from ams.mq.connect import connect
from ams.mq.ledger import DeliveryLedger
from ams.mq.protected import ProtectedQueueManager
from ams.mq.proxy.config import Route, ServiceConfig, Side
from ams.mq.proxy.events import ProxyEvent
from ams.mq.proxy.mover import ReprotectionProxy
from ams.mq.transport import QueueManager
from ams.policy import Policy, PolicyStore


@attrs.define
class OpenRoute:
    """A route's mover and the connections it runs on (closing backs out, then disconnects)."""

    proxy: ReprotectionProxy
    connections: list[QueueManager]

    def close(self) -> None:
        """Back out anything in flight, close the queues and disconnect."""
        with contextlib.suppress(AmsError):
            self.proxy.close()
        for connection in self.connections:
            with contextlib.suppress(AmsError):
                connection.close()


def _connect(spec: str, appl_name: str) -> QueueManager:
    """Connect; an embedded queue manager must exist already (a typo must not make a new one)."""
    if not spec.startswith("mq:") and not Path(spec).is_file():
        raise ConfigurationError(
            f"no embedded queue manager file {spec}: create it with `ams qm create {spec}` (then `ams qm define "
            f"QUEUE --qm {spec}`), or name an IBM MQ queue manager as mq://host(port)/QMGR?channel=CHANNEL"
        )
    return connect(spec, appl_name=appl_name)


def _policies(side: Side) -> Mapping[str, Policy] | None:
    return PolicyStore.from_directory(side.policies) if side.policies is not None else None


def open_route(
    route: Route,
    config: ServiceConfig,
    *,
    on_event: Callable[[ProxyEvent], None] | None = None,
    appl_name: str = "ams proxy",
) -> OpenRoute:
    """Connect, load the identities and policies, and open the route's queues (recipients' certificates
    are checked as the target opens). Everything opened is closed again if a step fails."""
    connections: list[QueueManager] = []
    try:
        source_qm = _connect(route.source.qm, appl_name)
        connections.append(source_qm)
        target_qm = source_qm
        if not route.one_queue_manager:
            target_qm = _connect(route.target.qm, appl_name)
            connections.append(target_qm)
        source, target = _managers(route, source_qm, target_qm)
        ledger = None
        if not route.one_queue_manager:
            scope = f"{route.name}/{route.source.qm_key}/{route.source.queue}"
            ledger = DeliveryLedger(target_qm, route.ledger_queue, retention=config.ledger_retention, scope=scope)
        proxy = ReprotectionProxy(
            source,
            route.source.queue,
            target,
            route.target.queue,
            route=route.name,
            batch_size=route.batch_size,
            batch_seconds=route.batch_seconds,
            ledger=ledger,
            keep_msg_id=route.keep_msg_id,
            signer_property=route.signer_property,
            on_event=on_event,
            backout_threshold=route.backout_threshold,
            backout_queue=route.backout_queue,
        )
    except BaseException:
        for connection in connections:
            with contextlib.suppress(AmsError):
                connection.close()
        raise
    return OpenRoute(proxy, connections)


def _managers(
    route: Route, source_qm: QueueManager, target_qm: QueueManager
) -> tuple[ProtectedQueueManager, ProtectedQueueManager]:
    """The route's protected connections: the reading identity on the source, the signing one on the target."""
    return (
        ProtectedQueueManager(
            source_qm,
            Keystore.from_conf(route.source.keystore_conf),
            _policies(route.source),
            require_policy=route.require_policy,
        ),
        ProtectedQueueManager(
            target_qm,
            Keystore.from_conf(route.target.keystore_conf),
            _policies(route.target),
            require_policy=route.require_policy,
        ),
    )


def _where(route: Route, config: ServiceConfig, *keys: str) -> str:
    """``FILE:LINE: routes[N].side.key`` for a problem with one value of a route."""
    from ams.mq.proxy.config import _key_lines

    data = read_bounded(config.path, "the proxy configuration", limit=DEFAULT_LIMITS.file_size)
    lines = _key_lines(data.decode("utf-8", "replace"))
    index = str(config.routes.index(route))
    for end in range(len(keys), -1, -1):
        line = lines.get(("routes", index, *keys[:end]))
        if line is not None:
            return f"{config.path}:{line}: route {route.name!r} {'.'.join(keys)}"
    return f"{config.path}:{route.line}: route {route.name!r}"


def _identity_problems(
    route: Route, config: ServiceConfig, source: ProtectedQueueManager, target: ProtectedQueueManager
) -> list[str]:
    """Whether the reading identity can read the source policy's messages, and the signing
    identity will be accepted by the target policy's readers."""
    problems = []
    reader, signer = source.keystore.identity, target.keystore.identity
    source_policy = source.policies.get(route.source.queue)
    target_policy = target.policies.get(route.target.queue)
    if source_policy is not None and source_policy.recipients and source_policy.qop is not QoP.INTEGRITY:
        readable = reader is not None and any(reader.dn.matches(r) for r in source_policy.recipients)
        if not readable:
            problems.append(
                f"{_where(route, config, 'source', 'keystore_conf')}: the reading identity "
                f"({reader.dn if reader else 'no identity'}) is not a recipient of {route.source.queue}'s policy "
                f"({'; '.join(map(str, source_policy.recipients))}): every message would be refused"
            )
    if target_policy is not None and target_policy.signers and target_policy.qop in (QoP.INTEGRITY, QoP.PRIVACY):
        accepted = signer is not None and any(signer.dn.matches(s) for s in target_policy.signers)
        if not accepted:
            problems.append(
                f"{_where(route, config, 'target', 'keystore_conf')}: the signing identity "
                f"({signer.dn if signer else 'no identity'}) is not an authorised signer of {route.target.queue}'s "
                f"policy ({'; '.join(map(str, target_policy.signers))}): its readers would refuse every message"
            )
    return problems


def _side_problems(route: Route, config: ServiceConfig, key: str) -> list[str]:
    side: Side = getattr(route, key)
    try:
        Keystore.from_conf(side.keystore_conf)
    except AmsError as error:
        return [f"{_where(route, config, key, 'keystore_conf')}: {error.message}"]
    except OSError as error:
        return [f"{_where(route, config, key, 'keystore_conf')}: cannot read {side.keystore_conf}: {error.strerror}"]
    try:
        _policies(side)
    except AmsError as error:
        return [f"{_where(route, config, key, 'policies')}: {error.message}"]
    return []


def _queue_problems(route: Route, config: ServiceConfig, source_qm: QueueManager, target_qm: QueueManager) -> list[str]:
    """The queues must open for what the route does with them (MQOPEN: an alias or a remote queue
    is as good as a local one, where an inquiry of CURDEPTH would fail with 2068): the source for
    input, the target and the backout queue for output, the ledger for output and browse."""
    wanted: list[tuple[QueueManager, str, dict[str, bool], tuple[str, ...]]] = [
        (source_qm, route.source.queue, {"input": True}, ("source", "queue")),
        (target_qm, route.target.queue, {"output": True}, ("target", "queue")),
    ]
    if route.backout_queue:
        wanted.append((source_qm, route.backout_queue, {"output": True}, ("backout_queue",)))
    if not route.one_queue_manager:
        wanted.append((target_qm, route.ledger_queue, {"output": True, "browse": True}, ("ledger_queue",)))
    problems = []
    for qm, queue, modes, keys in wanted:
        try:
            qm.open(queue, **modes).close()
        except AmsError as error:
            problems.append(f"{_where(route, config, *keys)}: {error.message}")
    return problems


def check_route(route: Route, config: ServiceConfig) -> list[str]:
    """Everything that would stop the route, each with the file and line to change."""
    problems = _side_problems(route, config, "source") + _side_problems(route, config, "target")
    if problems:
        return problems
    connections: list[QueueManager] = []
    try:
        for key in ("source", "target"):
            if key == "target" and route.one_queue_manager:
                break
            try:
                connections.append(_connect(getattr(route, key).qm, "ams proxy check"))
            except AmsError as error:
                return [f"{_where(route, config, key, 'qm')}: {error.message}"]
        source_qm, target_qm = connections[0], connections[-1]
        problems = _queue_problems(route, config, source_qm, target_qm)
        if problems:
            return problems
        source, target = _managers(route, source_qm, target_qm)
        for manager, key, output in ((source, "source", False), (target, "target", True)):
            try:
                manager.open(getattr(route, key).queue, input=not output, output=output).close()
            except AmsError as error:
                problems.append(f"{_where(route, config, key, 'policies')}: {error.message}")
        return problems + _identity_problems(route, config, source, target)
    finally:
        for connection in connections:
            with contextlib.suppress(AmsError):
                connection.close()


def check_config(config: ServiceConfig) -> list[str]:
    """Every route's problems, in file order."""
    problems: list[str] = []
    for route in config.routes:
        problems += check_route(route, config)
    return problems
