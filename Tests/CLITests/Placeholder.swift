// CLI scenario tests.
