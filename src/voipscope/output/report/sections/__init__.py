"""The report's sections, each from :class:`ReportData`: flows, calls, media quality,
alerts and anomalies. Every table is capped by ``Limits`` and says where the rest is."""

from voipscope.output.report.sections.calls import calls
from voipscope.output.report.sections.events import alerts, anomalies
from voipscope.output.report.sections.flows import flows
from voipscope.output.report.sections.quality import quality

__all__ = ["alerts", "anomalies", "calls", "flows", "quality"]
