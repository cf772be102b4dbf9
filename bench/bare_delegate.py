"""The ceiling of bench/http_bench.py: a bare Tornado message delegate answering a constant body.

``python bench/bare_delegate.py PORT`` serves every request (any method, any path) with
``{"jsonrpc":"2.0","result":"hello","id":1}`` from an ``HTTPServerConnectionDelegate`` on
uvloop: Tornado's HTTP/1.1 parser and nothing else, the most a Tornado process can do per
request. It reads no body and runs no JSON: not a server, a yardstick.
"""

import asyncio
import sys

import tornado.httpserver
import tornado.httputil
import uvloop

BODY = b'{"jsonrpc":"2.0","result":"hello","id":1}'
START_LINE = tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK")


class Answer(tornado.httputil.HTTPMessageDelegate):
    def __init__(self, connection: tornado.httputil.HTTPConnection) -> None:
        self.connection = connection

    def finish(self) -> None:
        headers = tornado.httputil.HTTPHeaders()
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(BODY))
        self.connection.write_headers(START_LINE, headers, BODY)
        self.connection.finish()


class Server(tornado.httputil.HTTPServerConnectionDelegate):
    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return Answer(request_conn)


async def main(port: int) -> None:
    tornado.httpserver.HTTPServer(Server()).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
