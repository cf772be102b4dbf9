"""The yardstick: a minimal Tornado handler that answers a JSON-RPC echo in-process.

``python bench/minimal_server.py PORT [uvloop]`` serves ``POST /rpc`` with no pool, no
validation beyond json.loads, and no logging: the most a Tornado process can do per request.
"""

import asyncio
import json
import sys

import tornado.web


class EchoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        request = json.loads(self.request.body)
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps({"jsonrpc": "2.0", "result": request["params"][0], "id": request["id"]})
        )


async def main(port: int) -> None:
    tornado.web.Application([(r"/rpc", EchoHandler)], log_function=lambda handler: None).listen(
        port, address="127.0.0.1"
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(int(sys.argv[1])))
