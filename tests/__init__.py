"""framegru's tests: the tree mirrors framegru/ (and plugins/, under tests/plugins/)."""
