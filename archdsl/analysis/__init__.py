"""Static analysis of a Graph: size binding, parameter and MAC counts, report formats."""

from archdsl.analysis.bind import bind, parse_sizes, substitute
from archdsl.analysis.cost import Row, Stats, node_path, stats
from archdsl.analysis.report import FORMATS, human, to_csv, to_json, to_text

__all__ = ["FORMATS", "Row", "Stats", "bind", "human", "node_path", "parse_sizes", "stats", "substitute",
           "to_csv", "to_json", "to_text"]
