"""The population engine: P trials trained at once in one TensorFlow graph.

Every weight carries a leading population axis and a whole epoch runs in one
``tf.function`` loop; the maths each op follows to reproduce Keras 3 is in the docs'
*The population engine* page (docs/explanation/population-engine.md).
"""

from bnsearch.engines._population._engine import PopulationEngine, SlotUse
from bnsearch.engines._population._members import member_model

__all__ = ["PopulationEngine", "SlotUse", "member_model"]
