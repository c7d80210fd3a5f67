// Tests are added with the engine's test suite.
