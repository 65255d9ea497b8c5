"""Device fleet simulator and load generator: `m2mcloud devices run`.

Simulated devices register their own AE, create their containers and publish sensor readings as
contentInstances over MQTT (TS-0010) or HTTP (TS-0009), at an aggregate rate set by a traffic
profile; the run ends with a summary, a JSON report and a PNG timeline.
"""
