"""A bus peer in its own process, for the flow tests.

``python -m tests.bus.peer_process URL UNIT CLIENT MODE``; MODE ``ok`` acks 1 ("started
<flow>"), ``reject`` acks 7, ``slow`` acks 1 after 2.5 s. Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import time

from busclient import BusPeer, FlowStart


def main(url: str, unit: str, client: str, mode: str) -> None:
    def on_flow_start(start: FlowStart) -> tuple[int, str]:
        if mode == "reject":
            return 7, f"flow {start.flow} is not deployed"
        if mode == "slow":
            time.sleep(2.5)
        return 1, f"started {start.flow}"

    peer = BusPeer(int(unit), int(client), on_flow_start, url=url, heartbeat_ms=500)
    signal.signal(signal.SIGTERM, lambda *_: peer.stop())
    peer.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
