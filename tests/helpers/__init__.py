"""Helpers the tests import or run: image variants, a tf.distribute worker, a pickle assembler."""
