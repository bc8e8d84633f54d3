"""Exports log records to tidelog with the OpenTelemetry Python SDK and its OTLP/HTTP exporter.

Usage: otlp_export.py <base-url> <records-per-exporter>
Runs two exporters (no compression, gzip), each with its own service.name, emits records with
attributes, severities, event names and trace context (inside spans), flushes, and prints one JSON line
per record for the caller to check against the query API. Exits non-zero if any export failed.
"""

import json
import sys

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

LEVELS = [
    (SeverityNumber.DEBUG, "DEBUG", "log.debug"),
    (SeverityNumber.INFO, "INFO", "log.info"),
    (SeverityNumber.WARN, "WARN", "log.warn"),
    (SeverityNumber.ERROR, "ERROR", "log.error"),
]


class CheckedExporter(OTLPLogExporter):
    """Remembers every export's result: the SDK only logs failures."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.results = []

    def export(self, batch):
        result = super().export(batch)
        self.results.append(result)
        return result


def run(base, n, service, compression, tracer):
    exporter = CheckedExporter(endpoint=f"{base}/v1/logs", compression=compression, timeout=10)
    provider = LoggerProvider(resource=Resource.create({"service.name": service, "host.name": "test-host"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=7))
    logger = provider.get_logger("tidelog.test", "0.1")
    expected = []
    for seq in range(n):
        number, text, event_type = LEVELS[seq % len(LEVELS)]
        record = {"service": service, "seq": seq, "severity_text": text, "severity_number": number.value}
        attributes = {"seq": seq, "user": f"u-{seq % 3}", "ratio": seq / 4, "ok": seq % 2 == 0}
        event_name = f"order.step{seq}" if seq % 5 == 0 else None
        record["event_type"] = event_name or event_type
        if seq % 2 == 0:
            with tracer.start_as_current_span(f"op-{seq}") as span:
                ctx = span.get_span_context()
                record["trace_id"] = format(ctx.trace_id, "032x")
                record["span_id"] = format(ctx.span_id, "016x")
                logger.emit(severity_number=number, severity_text=text, body=f"message {seq}",
                            attributes=attributes, event_name=event_name)
        else:
            logger.emit(severity_number=number, severity_text=text, body={"message": seq, "tags": ["a", "b"]},
                        attributes=attributes, event_name=event_name)
        expected.append(record)
    if not provider.force_flush(30_000):
        sys.exit(f"{service}: flush timed out")
    provider.shutdown()
    failed = [r for r in exporter.results if r != LogRecordExportResult.SUCCESS]
    if failed or not exporter.results:
        sys.exit(f"{service}: exports {exporter.results}")
    return expected, len(exporter.results)


def main():
    base, n = sys.argv[1], int(sys.argv[2])
    tracer = TracerProvider().get_tracer("tidelog.test")
    for service, compression in [("py-plain", Compression.NoCompression), ("py-gzip", Compression.Gzip)]:
        expected, requests = run(base, n, service, compression, tracer)
        print(json.dumps({"service": service, "requests": requests}), file=sys.stderr)
        for record in expected:
            print(json.dumps(record))


if __name__ == "__main__":
    main()
