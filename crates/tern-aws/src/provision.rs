//! Creating the AWS resources the SAM template declares, for tests against moto and for local development.
