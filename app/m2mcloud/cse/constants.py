"""oneM2M enumerations used by the CSE (TS-0004 clause 6.3, TS-0009 for the HTTP mapping)."""

from __future__ import annotations

from enum import IntEnum


class ResourceType(IntEnum):
    ACP = 1
    AE = 2
    CNT = 3
    CIN = 4
    CSEBASE = 5
    GRP = 9
    MGO = 13
    NOD = 14
    REQ = 17
    SUB = 23

    @property
    def tpe(self) -> str:
        """The resource type's short name used as the JSON wrapper key."""
        return _TPE[self]


_TPE = {
    ResourceType.ACP: "m2m:acp",
    ResourceType.AE: "m2m:ae",
    ResourceType.CNT: "m2m:cnt",
    ResourceType.CIN: "m2m:cin",
    ResourceType.CSEBASE: "m2m:cb",
    ResourceType.GRP: "m2m:grp",
    ResourceType.MGO: "m2m:mgo",  # stands for the specialization (m2m:fwr, m2m:bat, ...)
    ResourceType.NOD: "m2m:nod",
    ResourceType.REQ: "m2m:req",
    ResourceType.SUB: "m2m:sub",
}
# <mgmtObj> specializations (TS-0001 annex D): mgmtDefinition -> wrapper name.
MGMT_TPE = {
    1001: "m2m:fwr",
    1002: "m2m:swr",
    1003: "m2m:mem",
    1004: "m2m:ani",
    1005: "m2m:andi",
    1006: "m2m:bat",
    1007: "m2m:dvi",
    1008: "m2m:dvc",
    1009: "m2m:rbo",
    1010: "m2m:evl",
}
MGMT_MGD = {v: k for k, v in MGMT_TPE.items()}
TPE_TO_TYPE = {v: k for k, v in _TPE.items()}
TPE_TO_TYPE.update({tpe: ResourceType.MGO for tpe in MGMT_TPE.values()})


class Operation(IntEnum):
    CREATE = 1
    RETRIEVE = 2
    UPDATE = 3
    DELETE = 4
    NOTIFY = 5
    DISCOVERY = 6  # internal only: a RETRIEVE with fu=1, checked against the DISCOVER privilege

    @property
    def permission(self) -> int:
        """The accessControlOperations bit (acop) that grants this operation."""
        return _PERMISSION[self]


_PERMISSION = {
    Operation.CREATE: 1,
    Operation.RETRIEVE: 2,
    Operation.UPDATE: 4,
    Operation.DELETE: 8,
    Operation.NOTIFY: 16,
    Operation.DISCOVERY: 32,
}
ALL_PERMISSIONS = 63


class ResultContent(IntEnum):
    NOTHING = 0
    ATTRIBUTES = 1
    HIERARCHICAL_ADDRESS = 2
    HIERARCHICAL_ADDRESS_ATTRIBUTES = 3
    ATTRIBUTES_CHILD_RESOURCES = 4
    ATTRIBUTES_CHILD_RESOURCE_REFERENCES = 5
    CHILD_RESOURCE_REFERENCES = 6
    ORIGINAL_RESOURCE = 7
    CHILD_RESOURCES = 8
    MODIFIED_ATTRIBUTES = 9
    DISCOVERY_RESULT_REFERENCES = 11


class ResponseType(IntEnum):
    NON_BLOCKING_SYNCH = 1
    NON_BLOCKING_ASYNCH = 2
    BLOCKING = 3
    FLEX_BLOCKING = 4
    NO_RESPONSE = 5


class NotificationEventType(IntEnum):
    UPDATE = 1
    DELETE = 2
    CREATE_CHILD = 3
    DELETE_CHILD = 4
    RETRIEVE_CNT_NO_CHILD = 5


class NotificationContentType(IntEnum):
    ALL_ATTRIBUTES = 1
    MODIFIED_ATTRIBUTES = 2
    RESOURCE_ID = 3


class RSC(IntEnum):
    """Response status codes (TS-0004 table 6.3.3.2.9-1 and following)."""

    ACCEPTED = 1000
    ACCEPTED_NON_BLOCKING_SYNCH = 1001
    ACCEPTED_NON_BLOCKING_ASYNCH = 1002
    OK = 2000
    CREATED = 2001
    DELETED = 2002
    UPDATED = 2004
    BAD_REQUEST = 4000
    RELEASE_VERSION_NOT_SUPPORTED = 4001
    NOT_FOUND = 4004
    OPERATION_NOT_ALLOWED = 4005
    REQUEST_TIMEOUT = 4008
    UNSUPPORTED_MEDIA_TYPE = 4015
    SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE = 4101
    CONTENTS_UNACCEPTABLE = 4102
    ORIGINATOR_HAS_NO_PRIVILEGE = 4103
    CONFLICT = 4105
    ORIGINATOR_HAS_NOT_REGISTERED = 4106
    SECURITY_ASSOCIATION_REQUIRED = 4107
    INVALID_CHILD_RESOURCE_TYPE = 4108
    NO_MEMBERS = 4109
    GROUP_MEMBER_TYPE_INCONSISTENT = 4110
    ORIGINATOR_HAS_ALREADY_REGISTERED = 4117
    APP_RULE_VALIDATION_FAILED = 4126
    INTERNAL_SERVER_ERROR = 5000
    NOT_IMPLEMENTED = 5001
    TARGET_NOT_REACHABLE = 5103
    RECEIVER_HAS_NO_PRIVILEGE = 5105
    ALREADY_EXISTS = 5106
    TARGET_NOT_SUBSCRIBABLE = 5203
    SUBSCRIPTION_VERIFICATION_INITIATION_FAILED = 5204
    SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE = 5205
    NON_BLOCKING_SYNCH_REQUEST_NOT_SUPPORTED = 5206
    NOT_ACCEPTABLE = 5207
    MAX_NUMBER_OF_MEMBER_EXCEEDED = 6010
    INVALID_ARGUMENTS = 6023
    INSUFFICIENT_ARGUMENTS = 6024

    @property
    def http_status(self) -> int:
        """The HTTP status code TS-0009 maps this RSC to."""
        return _HTTP_STATUS.get(self, 500)


_HTTP_STATUS = {
    RSC.ACCEPTED: 202,
    RSC.ACCEPTED_NON_BLOCKING_SYNCH: 202,
    RSC.ACCEPTED_NON_BLOCKING_ASYNCH: 202,
    RSC.OK: 200,
    RSC.CREATED: 201,
    RSC.DELETED: 200,
    RSC.UPDATED: 200,
    RSC.BAD_REQUEST: 400,
    RSC.RELEASE_VERSION_NOT_SUPPORTED: 400,
    RSC.NOT_FOUND: 404,
    RSC.OPERATION_NOT_ALLOWED: 405,
    RSC.REQUEST_TIMEOUT: 408,
    RSC.UNSUPPORTED_MEDIA_TYPE: 415,
    RSC.SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE: 403,
    RSC.CONTENTS_UNACCEPTABLE: 400,
    RSC.ORIGINATOR_HAS_NO_PRIVILEGE: 403,
    RSC.CONFLICT: 409,
    RSC.ORIGINATOR_HAS_NOT_REGISTERED: 403,
    RSC.SECURITY_ASSOCIATION_REQUIRED: 403,
    RSC.INVALID_CHILD_RESOURCE_TYPE: 403,
    RSC.NO_MEMBERS: 403,
    RSC.GROUP_MEMBER_TYPE_INCONSISTENT: 400,
    RSC.ORIGINATOR_HAS_ALREADY_REGISTERED: 403,
    RSC.APP_RULE_VALIDATION_FAILED: 403,
    RSC.INTERNAL_SERVER_ERROR: 500,
    RSC.NOT_IMPLEMENTED: 501,
    RSC.TARGET_NOT_REACHABLE: 404,
    RSC.RECEIVER_HAS_NO_PRIVILEGE: 403,
    RSC.ALREADY_EXISTS: 403,
    RSC.TARGET_NOT_SUBSCRIBABLE: 403,
    RSC.SUBSCRIPTION_VERIFICATION_INITIATION_FAILED: 500,
    RSC.SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE: 403,
    RSC.NON_BLOCKING_SYNCH_REQUEST_NOT_SUPPORTED: 501,
    RSC.NOT_ACCEPTABLE: 406,
    RSC.MAX_NUMBER_OF_MEMBER_EXCEEDED: 400,
    RSC.INVALID_ARGUMENTS: 400,
    RSC.INSUFFICIENT_ARGUMENTS: 400,
}

SUPPORTED_RELEASES = ("2a", "3", "4", "5")  # request RVIs this CSE answers
KNOWN_RELEASES = ("1", "2", "2a", "3", "4", "5", "6")  # values an AE may list in srv
