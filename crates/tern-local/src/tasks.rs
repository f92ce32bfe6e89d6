//! What the local engine's workflow Task states run: Step Functions' SQS integration on the queue port;
//! any other resource fails the task with an error that names it (Retry and Catch see `States.TaskFailed`).

use std::sync::Arc;

use tern_embedded::workflows::{NoTasks, QueueTaskRunner, TaskRunner};
use tern_ports::Queue;

pub fn task_runner(queue: Arc<dyn Queue>) -> Arc<dyn TaskRunner> {
    Arc::new(QueueTaskRunner::new(queue, Arc::new(NoTasks)))
}
