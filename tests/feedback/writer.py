"""A feedback writer process for the concurrency and kill -9 tests.

    python writer.py TARGET TAG BATCHES BATCH [START_AT]

Appends BATCHES batches of BATCH click events (request_id TAG-<n>) and, after each append
returns (after COMMIT), prints ``ack <id>=<request_id> ...`` on one line, flushed. BATCHES 0
means forever. START_AT: unix time to wait for, so several writers start at once.
"""

import sys
import time

from onefeed.feedback import FeedbackEvent, open_log


def main() -> None:
    target, tag, batches, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    start_at = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    log = open_log(target)
    time.sleep(max(0.0, start_at - time.time()))
    n, b = 0, 0
    while batches == 0 or b < batches:
        events = []
        for _ in range(batch):
            events.append(FeedbackEvent(f"u{n % 7}", "click", 1.7e9 + n, item=f"i{n % 11}",
                                        position=n % 10, request_id=f"{tag}-{n}"))
            n += 1
        ids = log.append(events)
        sys.stdout.write("ack " + " ".join(f"{i}={e.request_id}" for i, e in zip(ids, events))
                         + "\n")
        sys.stdout.flush()
        b += 1
    log.close()


if __name__ == "__main__":
    main()
