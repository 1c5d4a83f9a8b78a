"""The floors of this design: the least a mint and an accept can do, written as Lambda handlers.

Each ``<kind>/app.py`` is packaged and measured exactly like the real functions (``bench/_envs.py``
``floor_package``, ``bench/_lambda_child.py``), so a function's figure divided by its floor's is what
our code adds to the unavoidable work: importing boto3 and PyJWT (and ``cryptography`` for accept),
creating the clients, reading the secrets, the cryptography and the one DynamoDB call.

They are benchmarks only: no input checks, no logs, no metrics, no error envelope.
"""
