"""Run the service: python -m app."""
import os

from app.web import create_app

if __name__ == "__main__":
    create_app().run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
