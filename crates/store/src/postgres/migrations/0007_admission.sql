-- Priority classes and admission queues: the class a request ran at, how long it waited for
-- a deployment's capacity (milliseconds, every wait added), how often it was preempted.
ALTER TABLE requests ADD COLUMN priority TEXT;
ALTER TABLE requests ADD COLUMN queue_ms BIGINT;
ALTER TABLE requests ADD COLUMN preemptions BIGINT;
