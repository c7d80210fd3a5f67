// Reader tests.
