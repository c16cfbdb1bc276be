"""The population engine: P trials trained at once in one TensorFlow graph.

Every weight carries a leading population axis; the docs' *The population engine* page has
the maths each op follows to reproduce Keras 3.
"""

from bnsearch.engines._population._engine import PopulationEngine
from bnsearch.engines._population._graph import SlotUse
from bnsearch.engines._population._members import member_model

__all__ = ["PopulationEngine", "SlotUse", "member_model"]
