"""Projects and their committee draw: create (operator), commit, run with public entropy,
the proof anyone may replay, and the committee list, sealed until the evaluation starts;
supplementary draws for seats no backup was left for, and the chain of proofs."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import AnyStaff, Db, Operator, ServicesDep
from api.errors import ValidationFailed
from api.schemas.committee.call_ups import CallUpOut, ResponseIn, ResponseOut
from api.schemas.committee.projects import DrawChainOut, DrawOut, MemberOut, ProjectOut
from evaluation.committee import call_ups, draws, projects
from evaluation.committee.draws import DrawPolicy, RunDraw, SupplementaryDraw
from evaluation.committee.projects import NewProject
from models.tables import Draw, Project

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


def draw_out(draw: Draw, sealed: bool) -> DrawOut:
    return DrawOut(
        id=draw.id,
        project_id=draw.project_id,
        status=draw.status,
        commitment=draw.commitment,
        public_entropy=draw.public_entropy,
        created_at=draw.created_at,
        ran_at=draw.ran_at,
        previous_draw_id=draw.previous_draw_id,
        spec=draw.spec,
        proof=draws.published_proof(draw, sealed=sealed),
    )


def _project_out(project: Project) -> ProjectOut:
    return ProjectOut.model_validate(project)


@router.post("", response_model=ProjectOut, status_code=status.HTTP_201_CREATED)
def create_project(body: NewProject, staff: Operator, db: Db, services: ServicesDep) -> ProjectOut:
    """A project, refused with 422 when its committee breaks the regime's rules."""
    return _project_out(projects.create_project(db, staff.caller, services.clock, body))


@router.get("", response_model=list[ProjectOut])
def list_projects(staff: AnyStaff, db: Db) -> list[ProjectOut]:
    """The center's projects, newest first."""
    return [_project_out(p) for p in projects.list_projects(db, staff.center_id)]


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: str, staff: AnyStaff, db: Db) -> ProjectOut:
    """One project: tenderer, bidders, evaluation window, committee rules and status."""
    return _project_out(projects.get_project(db, staff.center_id, project_id))


@router.post("/{project_id}/draws", response_model=DrawOut, status_code=status.HTTP_201_CREATED)
def commit_draw(project_id: str, staff: Operator, db: Db, services: ServicesDep) -> DrawOut:
    """Start a draw: the commitment to the server secret is published now, before anyone
    gives the public entropy."""
    draw = draws.create_draw(db, staff.caller, services.clock, services.cipher, project_id)
    return draw_out(draw, sealed=True)


@router.post(
    "/{project_id}/draws/supplementary",
    response_model=DrawOut,
    status_code=status.HTTP_201_CREATED,
)
def commit_supplementary_draw(
    project_id: str, body: SupplementaryDraw, staff: Operator, db: Db, services: ServicesDep
) -> DrawOut:
    """Start a supplementary draw for seats left vacant with no backup: its commitment binds
    the secret to the last proof, everyone drawn or excluded before, and the seats. Run it
    like the first draw, with `POST …/draws/{draw_id}/run`."""
    draw = draws.commit_supplementary(
        db, staff.caller, services.clock, services.cipher, project_id, body
    )
    return draw_out(draw, sealed=True)


@router.get("/{project_id}/draws/chain", response_model=DrawChainOut)
def get_draw_chain(project_id: str, staff: AnyStaff, db: Db, services: ServicesDep) -> DrawChainOut:
    """Every draw of the project in order and the chain of their proofs
    (`draw-proof.json`), sealed like the committee until the evaluation starts."""
    project = projects.get_project(db, staff.center_id, project_id)
    sealed = draws.proof_is_sealed(project, staff.role.value, services.clock)
    chain = draws.draw_chain(db, project)
    return DrawChainOut(
        project_id=project.id,
        draws=[draw_out(draw, sealed) for draw in chain],
        proofs=[draws.published_proof(d, sealed=sealed) for d in chain if d.proof is not None],
        vacancies=draws.vacancies(db, project),
    )


@router.post("/{project_id}/draws/{draw_id}/run", response_model=DrawOut)
def run_draw(
    project_id: str, draw_id: str, body: RunDraw, staff: Operator, db: Db, services: ServicesDep
) -> DrawOut:
    """Run a committed draw (the first or a supplementary one) with the public entropy; the
    proof reveals the secret. A supplementary draw's members are called up at once."""
    draw = draws.run_draw(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        DrawPolicy.from_settings(services.settings),
        project_id,
        draw_id,
        body,
    )
    project = projects.get_project(db, staff.center_id, project_id)
    # The operator who runs the draw does not see who was drawn (separation of duties).
    return draw_out(draw, draws.proof_is_sealed(project, staff.role.value, services.clock))


@router.get("/{project_id}/draws/{draw_id}", response_model=DrawOut)
def get_draw(
    project_id: str, draw_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> DrawOut:
    """The draw record and its proof (`evalsign draw verify` replays it); the proof names
    the drawn experts, so it is sealed like the committee until the evaluation starts."""
    project = projects.get_project(db, staff.center_id, project_id)
    sealed = draws.proof_is_sealed(project, staff.role.value, services.clock)
    return draw_out(draws.get_draw(db, project, draw_id), sealed)


@router.get("/{project_id}/committee", response_model=list[MemberOut])
def get_committee(
    project_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> list[MemberOut]:
    """Who was drawn, with names: admins at any time, others once the evaluation starts."""
    rows = draws.committee(db, staff.center_id, project_id, staff.role.value, services.clock)
    return [
        MemberOut(
            assignment_id=assignment.id,
            expert_id=assignment.expert_id,
            name=expert.name,
            specialty=assignment.specialty,
            role=assignment.role,
            rank=assignment.rank,
            status=assignment.status,
        )
        for assignment, expert in rows
    ]


@router.get("/{project_id}/call-ups", response_model=list[CallUpOut])
def list_call_ups(
    project_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> list[CallUpOut]:
    """Each drawn member's call-up: whether the message went out (and why not), its
    deadline and the answer. Operators follow the answers at once but see who only once
    the evaluation starts (they run the draw without knowing the committee); supervisors
    see nothing until then; admins see everything."""
    project = projects.get_project(db, staff.center_id, project_id)
    role = staff.role.value
    if role not in ("admin", "operator"):
        draws.refuse_if_sealed(project, role, services.clock)
    named = not draws.proof_is_sealed(project, role, services.clock)
    return [
        CallUpOut(
            assignment_id=assignment.id,
            specialty=assignment.specialty,
            rank=assignment.rank,
            expert_id=expert.id if named else None,
            name=expert.name if named else None,
            seat_status=assignment.status,
            status=call_up.status,
            attempts=call_up.attempts,
            last_error=call_up.last_error,
            channel=call_up.channel,
            created_at=call_up.created_at,
            sent_at=call_up.sent_at,
            deadline_at=call_up.deadline_at,
            answer=call_up.answer,
            answered_at=call_up.answered_at,
        )
        for call_up, assignment, expert in call_ups.of_project(db, project.id)
    ]


@router.post("/{project_id}/assignments/{assignment_id}/response", response_model=ResponseOut)
def record_response(
    project_id: str,
    assignment_id: str,
    body: ResponseIn,
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> ResponseOut:
    """An invited member's answer, as the operator took it (phone, call): a decline, with
    its reason, promotes the next backup of the same specialty."""
    if not body.accept and not (body.reason and body.reason.strip()):
        raise ValidationFailed("a decline states its reason")
    answered, promoted = draws.respond(
        db, staff.caller, services.clock, project_id, assignment_id, body.accept, body.reason
    )
    return ResponseOut(
        assignment_id=answered.id,
        status=answered.status,
        promoted_expert_id=promoted.expert_id if promoted else None,
    )
