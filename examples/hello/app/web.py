"""A minimal Flask application."""
from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index():
        return jsonify(message="hello from ship")

    @app.get("/healthz")
    def healthz():
        return "ok"

    return app
