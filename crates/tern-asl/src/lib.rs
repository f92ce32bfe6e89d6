//! An interpreter of the Amazon States Language (JSONPath dialect), free of I/O: it steps executions, the embedded engine persists them.
