"""Round robin between producers: each client's jobs run in its order, clients take turns.

One producer queueing ten takes must not make the next producer wait for all ten. Jobs are kept per
client (the `X-Segue-Client` id a RemoteEngineClient sends); `pop` serves the client at the front,
then moves it to the back of the line.
"""

from collections import OrderedDict, deque
from typing import Generic, TypeVar

Job = TypeVar("Job")


class FairQueue(Generic[Job]):
    def __init__(self) -> None:
        self._by_client: OrderedDict[str, deque[Job]] = OrderedDict()

    def put(self, client: str, job: Job) -> int:
        """Queue `job`; return how many jobs will run before it."""
        self._by_client.setdefault(client, deque()).append(job)
        return self.position(client, job)

    def pop(self) -> Job | None:
        """The next job in round-robin order, or None when nothing waits."""
        if not self._by_client:
            return None
        client, jobs = next(iter(self._by_client.items()))
        job = jobs.popleft()
        if jobs:
            self._by_client.move_to_end(client)
        else:
            del self._by_client[client]
        return job

    def remove(self, client: str, job: Job) -> bool:
        """Drop a waiting job (its producer went away); False if it is not waiting."""
        jobs = self._by_client.get(client)
        if jobs is None or job not in jobs:
            return False
        jobs.remove(job)
        if not jobs:
            del self._by_client[client]
        return True

    def position(self, client: str, job: Job) -> int:
        """Jobs that `pop` returns before `job`: a round of turns per job ahead of it in its own line."""
        jobs = self._by_client[client]
        rounds = jobs.index(job)
        before = 0
        for index, (other, waiting) in enumerate(self._by_client.items()):
            if other == client:
                before += min(len(waiting), rounds)
            else:
                # Clients ahead in the line get one more turn in the round this job runs in.
                ahead_in_round = index < list(self._by_client).index(client)
                before += min(len(waiting), rounds + ahead_in_round)
        return before

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_client.values())
