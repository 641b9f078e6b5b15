import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("hello", "batch", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: EventBatch
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[EventBatch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class CollectorMessage(_message.Message):
    __slots__ = ("welcome", "ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: Ack
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("agent_version", "host", "spool", "resources", "inventory")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SPOOL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    host: HostFacts
    spool: SpoolStats
    resources: AgentResources
    inventory: ImageInventory
    def __init__(self, agent_version: _Optional[str] = ..., host: _Optional[_Union[HostFacts, _Mapping]] = ..., spool: _Optional[_Union[SpoolStats, _Mapping]] = ..., resources: _Optional[_Union[AgentResources, _Mapping]] = ..., inventory: _Optional[_Union[ImageInventory, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("collector_version", "max_batch_events")
    COLLECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    collector_version: str
    max_batch_events: int
    def __init__(self, collector_version: _Optional[str] = ..., max_batch_events: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time", "spool", "resources", "inventory")
    TIME_FIELD_NUMBER: _ClassVar[int]
    SPOOL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    spool: SpoolStats
    resources: AgentResources
    inventory: ImageInventory
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., spool: _Optional[_Union[SpoolStats, _Mapping]] = ..., resources: _Optional[_Union[AgentResources, _Mapping]] = ..., inventory: _Optional[_Union[ImageInventory, _Mapping]] = ...) -> None: ...

class ImageInventory(_message.Message):
    __slots__ = ("unrunnable", "images_judged")
    UNRUNNABLE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_JUDGED_FIELD_NUMBER: _ClassVar[int]
    unrunnable: _containers.RepeatedCompositeFieldContainer[UnrunnableImage]
    images_judged: int
    def __init__(self, unrunnable: _Optional[_Iterable[_Union[UnrunnableImage, _Mapping]]] = ..., images_judged: _Optional[int] = ...) -> None: ...

class UnrunnableImage(_message.Message):
    __slots__ = ("image", "image_id", "image_platform", "binary_platform", "cause", "explanation", "hint", "fix", "path")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    BINARY_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    FIX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    image: str
    image_id: str
    image_platform: str
    binary_platform: str
    cause: str
    explanation: str
    hint: str
    fix: str
    path: str
    def __init__(self, image: _Optional[str] = ..., image_id: _Optional[str] = ..., image_platform: _Optional[str] = ..., binary_platform: _Optional[str] = ..., cause: _Optional[str] = ..., explanation: _Optional[str] = ..., hint: _Optional[str] = ..., fix: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class SpoolStats(_message.Message):
    __slots__ = ("events", "dropped_total", "bytes")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    events: int
    dropped_total: int
    bytes: int
    def __init__(self, events: _Optional[int] = ..., dropped_total: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class AgentResources(_message.Message):
    __slots__ = ("resident_memory_bytes", "cpu_seconds", "open_fds", "spool_writable", "uptime_seconds")
    RESIDENT_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FDS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_WRITABLE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    resident_memory_bytes: int
    cpu_seconds: float
    open_fds: int
    spool_writable: bool
    uptime_seconds: float
    def __init__(self, resident_memory_bytes: _Optional[int] = ..., cpu_seconds: _Optional[float] = ..., open_fds: _Optional[int] = ..., spool_writable: _Optional[bool] = ..., uptime_seconds: _Optional[float] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, batch_id: _Optional[int] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("batch_id", "stored_event_ids", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    stored_event_ids: _containers.RepeatedScalarFieldContainer[str]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    def __init__(self, batch_id: _Optional[int] = ..., stored_event_ids: _Optional[_Iterable[str]] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Emulator(_message.Message):
    __slots__ = ("name", "platform", "interpreter", "flags", "enabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    platform: str
    interpreter: str
    flags: str
    enabled: bool
    def __init__(self, name: _Optional[str] = ..., platform: _Optional[str] = ..., interpreter: _Optional[str] = ..., flags: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class HostFacts(_message.Message):
    __slots__ = ("host_id", "platform", "kernel_machine", "kernel_release", "docker_version", "docker_platform", "default_runtime", "runtime_version", "cpu_model", "page_size", "memory_bytes", "can_run_32bit", "emulators", "hostname", "runnable_platforms", "cpu_level", "engine", "engine_version")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    KERNEL_MACHINE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    DOCKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCKER_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAN_RUN_32BIT_FIELD_NUMBER: _ClassVar[int]
    EMULATORS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    RUNNABLE_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    CPU_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    platform: str
    kernel_machine: str
    kernel_release: str
    docker_version: str
    docker_platform: str
    default_runtime: str
    runtime_version: str
    cpu_model: str
    page_size: int
    memory_bytes: int
    can_run_32bit: bool
    emulators: _containers.RepeatedCompositeFieldContainer[Emulator]
    hostname: str
    runnable_platforms: _containers.RepeatedScalarFieldContainer[str]
    cpu_level: str
    engine: str
    engine_version: str
    def __init__(self, host_id: _Optional[str] = ..., platform: _Optional[str] = ..., kernel_machine: _Optional[str] = ..., kernel_release: _Optional[str] = ..., docker_version: _Optional[str] = ..., docker_platform: _Optional[str] = ..., default_runtime: _Optional[str] = ..., runtime_version: _Optional[str] = ..., cpu_model: _Optional[str] = ..., page_size: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., can_run_32bit: _Optional[bool] = ..., emulators: _Optional[_Iterable[_Union[Emulator, _Mapping]]] = ..., hostname: _Optional[str] = ..., runnable_platforms: _Optional[_Iterable[str]] = ..., cpu_level: _Optional[str] = ..., engine: _Optional[str] = ..., engine_version: _Optional[str] = ...) -> None: ...

class ContainerFacts(_message.Message):
    __slots__ = ("id", "name", "exit_code", "runtime_message", "finished_at", "entrypoint", "cmd", "removed", "kubernetes")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    exit_code: int
    runtime_message: str
    finished_at: _timestamp_pb2.Timestamp
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    cmd: _containers.RepeatedScalarFieldContainer[str]
    removed: bool
    kubernetes: KubernetesPod
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., exit_code: _Optional[int] = ..., runtime_message: _Optional[str] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entrypoint: _Optional[_Iterable[str]] = ..., cmd: _Optional[_Iterable[str]] = ..., removed: _Optional[bool] = ..., kubernetes: _Optional[_Union[KubernetesPod, _Mapping]] = ...) -> None: ...

class KubernetesPod(_message.Message):
    __slots__ = ("pod", "namespace", "container", "pod_uid", "restart_count", "has_restart_count")
    POD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    RESTART_COUNT_FIELD_NUMBER: _ClassVar[int]
    HAS_RESTART_COUNT_FIELD_NUMBER: _ClassVar[int]
    pod: str
    namespace: str
    container: str
    pod_uid: str
    restart_count: int
    has_restart_count: bool
    def __init__(self, pod: _Optional[str] = ..., namespace: _Optional[str] = ..., container: _Optional[str] = ..., pod_uid: _Optional[str] = ..., restart_count: _Optional[int] = ..., has_restart_count: _Optional[bool] = ...) -> None: ...

class ImageFacts(_message.Message):
    __slots__ = ("ref", "id", "declared_platform", "repo_digests", "available_platforms", "available_platforms_known")
    REF_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DECLARED_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_PLATFORMS_KNOWN_FIELD_NUMBER: _ClassVar[int]
    ref: str
    id: str
    declared_platform: str
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    available_platforms: _containers.RepeatedScalarFieldContainer[str]
    available_platforms_known: bool
    def __init__(self, ref: _Optional[str] = ..., id: _Optional[str] = ..., declared_platform: _Optional[str] = ..., repo_digests: _Optional[_Iterable[str]] = ..., available_platforms: _Optional[_Iterable[str]] = ..., available_platforms_known: _Optional[bool] = ...) -> None: ...

class BinaryFacts(_message.Message):
    __slots__ = ("path", "kind", "platform", "shebang", "interpreter", "description", "source", "requested_path", "error", "truncated", "size", "missing", "libc", "image_libc", "isa_level", "load_align", "damage")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SHEBANG_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_PATH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    LIBC_FIELD_NUMBER: _ClassVar[int]
    IMAGE_LIBC_FIELD_NUMBER: _ClassVar[int]
    ISA_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LOAD_ALIGN_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: str
    platform: str
    shebang: str
    interpreter: str
    description: str
    source: str
    requested_path: str
    error: str
    truncated: bool
    size: int
    missing: str
    libc: str
    image_libc: str
    isa_level: int
    load_align: int
    damage: str
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[str] = ..., platform: _Optional[str] = ..., shebang: _Optional[str] = ..., interpreter: _Optional[str] = ..., description: _Optional[str] = ..., source: _Optional[str] = ..., requested_path: _Optional[str] = ..., error: _Optional[str] = ..., truncated: _Optional[bool] = ..., size: _Optional[int] = ..., missing: _Optional[str] = ..., libc: _Optional[str] = ..., image_libc: _Optional[str] = ..., isa_level: _Optional[int] = ..., load_align: _Optional[int] = ..., damage: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "time", "host", "container", "image", "binary", "cause", "explanation", "evidence", "backfilled", "failure")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    BACKFILLED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    time: _timestamp_pb2.Timestamp
    host: HostFacts
    container: ContainerFacts
    image: ImageFacts
    binary: BinaryFacts
    cause: str
    explanation: str
    evidence: str
    backfilled: bool
    failure: str
    def __init__(self, event_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., host: _Optional[_Union[HostFacts, _Mapping]] = ..., container: _Optional[_Union[ContainerFacts, _Mapping]] = ..., image: _Optional[_Union[ImageFacts, _Mapping]] = ..., binary: _Optional[_Union[BinaryFacts, _Mapping]] = ..., cause: _Optional[str] = ..., explanation: _Optional[str] = ..., evidence: _Optional[str] = ..., backfilled: _Optional[bool] = ..., failure: _Optional[str] = ...) -> None: ...
