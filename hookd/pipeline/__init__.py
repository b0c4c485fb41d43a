"""The record → delivery pipeline: one loaded config (`runtime`), record → deliveries → final
(`dispatch`), off the common way: retries, parkings, 410s (`afterwards`), parked or
dead-lettered (`endings`), the records' work by partition
(`inflight`), deliveries under way and the order per key (`deliveries`)."""
