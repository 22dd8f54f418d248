"""The pipeline's Python log records, through the node's ROS logger (``/rosout``, ``--log-level``).

The library below ``ros/`` logs with Python ``logging`` (logger ``evs_ros``), which knows no node:
its lines would reach the terminal only. :class:`PipelineLogForwarder` hands every record to the
rclpy logger of the node it concerns, so it carries the node's name, reaches ``/rosout``
(rqt_console, log collectors) and obeys the node's log level (``--ros-args --log-level``,
``log_level:=``):

- **Which node.** A record of a camera stream starts with the stream's name, which is
  ``<node fully qualified name>: <camera>``; it goes to that node (the node name is then left
  out of the text: the ROS logger prints it). Other records (the network loading, the inference
  worker) go to the node loading in the calling thread, else to every node attached.
- **One line per cause.** A stream's records log at most one line per (node, camera, message
  template, level) every :data:`REPEAT_LOG_PERIOD_S` (rclpy's ``throttle_duration_sec``), so a
  bad stream never logs a line per frame; its counts are in ``status`` and ``/diagnostics``.
  Records that name no stream (loading a network, closing) are not throttled.
- **No tracebacks.** A record's exception is left out of its line; the traceback goes to the
  DEBUG level.

With no node attached (a process without nodes, or after the last one closed) records go to the
rclpy logger ``evs_ros`` (terminal only), as before a node exists.
"""

import logging
import threading
import traceback
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import rclpy.logging
from rclpy.logging import LoggingSeverity

REPEAT_LOG_PERIOD_S = 5.0
"""A cause logs at most one line in this period (its count keeps going in the diagnostics)."""
PIPELINE_LOGGER = 'evs_ros'
MAX_CAUSES = 512
"""Throttled causes remembered per process; more (a pathological stream) share one throttle."""


def severity_of(levelno: int) -> LoggingSeverity:
    """Return the ROS severity of a Python logging level."""
    if levelno >= logging.CRITICAL:
        return LoggingSeverity.FATAL
    if levelno >= logging.ERROR:
        return LoggingSeverity.ERROR
    if levelno >= logging.WARNING:
        return LoggingSeverity.WARN
    if levelno >= logging.INFO:
        return LoggingSeverity.INFO
    return LoggingSeverity.DEBUG


class PipelineLogForwarder(logging.Handler):
    """Forwards ``evs_ros`` records to the rclpy loggers of the attached nodes (see module doc).

    Args:
        make_logger: ``name -> rclpy logger`` (a new logger object per call: each has its own
            throttle state); injectable for tests.
    """

    def __init__(self, make_logger=rclpy.logging.get_logger):
        super().__init__(logging.DEBUG)
        self.make_logger = make_logger
        self.nodes: Dict[str, str] = {}  # fully qualified node name -> its ROS logger name
        self.loading = threading.local()
        self.causes: Dict[Tuple, object] = {}

    def attach(self, node_name: str, logger_name: str) -> None:
        """Send the records of node ``node_name`` (fully qualified) to logger ``logger_name``."""
        with self.lock:
            self.nodes[node_name] = logger_name

    def detach(self, node_name: str) -> None:
        with self.lock:
            self.nodes.pop(node_name, None)

    @contextmanager
    def loading_node(self, node_name: str) -> Iterator[None]:
        """Send this thread's records that name no stream to ``node_name`` meanwhile."""
        previous = getattr(self.loading, 'node', None)
        self.loading.node = node_name
        try:
            yield
        finally:
            self.loading.node = previous

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            for logger_name, camera, line in self._targets(text):
                self._log(logger_name, camera, record, line)
        except Exception:  # noqa: B902 - logging must never raise into the pipeline
            self.handleError(record)

    def _targets(self, text: str) -> List[Tuple[Optional[str], str, str]]:
        """[(ROS logger name or None for the fallback, camera, line)] for a record's text."""
        for node_name, logger_name in self.nodes.items():
            prefix = node_name + ': '
            if text.startswith(prefix):
                camera, _, _ = text[len(prefix):].partition(': ')
                return [(logger_name, camera, text[len(prefix):])]
        loading = getattr(self.loading, 'node', None)
        if loading in self.nodes:
            return [(self.nodes[loading], '', text)]
        if self.nodes:
            return [(logger_name, '', text) for logger_name in self.nodes.values()]
        return [(None, '', text)]

    def _log(self, logger_name: Optional[str], camera: str, record: logging.LogRecord,
             line: str) -> None:
        severity = severity_of(record.levelno)
        key = (logger_name, camera, record.msg, severity)
        logger = self._cause_logger(key, logger_name)
        if not logger.is_enabled_for(severity):
            return
        if camera:  # the stream's records may repeat with every frame
            logged = logger.log(line, severity, throttle_duration_sec=REPEAT_LOG_PERIOD_S)
        else:  # loading and shutdown: once each
            logged = logger.log(line, severity)
        if logged and record.exc_info and logger.is_enabled_for(LoggingSeverity.DEBUG):
            logger.debug(''.join(traceback.format_exception(*record.exc_info)).rstrip())

    def _cause_logger(self, key: Tuple, logger_name: Optional[str]):
        """Return the logger object of one cause (rclpy throttles per object and call site)."""
        logger = self.causes.get(key)
        if logger is None:
            if len(self.causes) >= MAX_CAUSES:
                key = (logger_name, None, None, key[3])
                logger = self.causes.get(key)
            if logger is None:
                logger = self.causes[key] = self.make_logger(logger_name or PIPELINE_LOGGER)
        return logger


_FORWARDER: List[PipelineLogForwarder] = []
_INSTALL_LOCK = threading.Lock()


def forwarder() -> PipelineLogForwarder:
    """Return the process's forwarder, installed on the ``evs_ros`` Python logger on first use.

    That logger then passes every level on and stops propagating to the root logger.
    """
    with _INSTALL_LOCK:
        if not _FORWARDER:
            handler = PipelineLogForwarder()
            logger = logging.getLogger(PIPELINE_LOGGER)
            logger.addHandler(handler)
            logger.setLevel(logging.DEBUG)  # the ROS logger of each node filters
            logger.propagate = False
            _FORWARDER.append(handler)
        return _FORWARDER[0]


def attach(node) -> None:
    """Send the pipeline's records about ``node`` to its ROS logger."""
    forwarder().attach(node.get_fully_qualified_name(), node.get_logger().name)


def detach(node) -> None:
    """Stop sending records to ``node`` (before it is destroyed)."""
    forwarder().detach(node.get_fully_qualified_name())


def loading(node):
    """Context: records of this thread that name no stream go to ``node`` (network loading)."""
    return forwarder().loading_node(node.get_fully_qualified_name())
