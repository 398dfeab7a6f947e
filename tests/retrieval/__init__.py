"""Tests of assemble_tf.retrieval and tools.eval_retrieval."""
