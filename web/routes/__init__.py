"""The dashboard's routes, one router per concern; create_app in web/app.py includes them all."""
