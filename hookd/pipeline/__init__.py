"""The record → delivery pipeline: one loaded config (`runtime`), record → deliveries → final
(`dispatch`), parked or dead-lettered (`endings`), the records' work by partition
(`inflight`), deliveries under way and the order per key (`deliveries`)."""
