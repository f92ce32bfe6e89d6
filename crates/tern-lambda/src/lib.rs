//! Hosting glue for Lambda: tracing, configuration from the environment, AWS ports, and the SQS batch contract.
