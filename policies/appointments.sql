-- Appointments: the status machine. Re-appliable.

/*
 * Status machine: scheduled → in_progress | cancelled; in_progress → done | cancelled.
 * New appointments start as scheduled. Raises SS409 (INVALID_TRANSITION) otherwise.
 */
create or replace function app.appointment_status_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    if new.status <> 'scheduled' then
      raise exception 'a new appointment starts as scheduled, not %', new.status using errcode = 'SS409', constraint = 'appointment_status';
    end if;
  elsif new.status is distinct from old.status
        and (old.status, new.status) not in (('scheduled', 'in_progress'), ('scheduled', 'cancelled'),
                                             ('in_progress', 'done'), ('in_progress', 'cancelled')) then
    raise exception 'appointment cannot go from % to %', old.status, new.status using errcode = 'SS409', constraint = 'appointment_status';
  end if;
  return new;
end
$$;
revoke execute on function app.appointment_status_guard() from public;

drop trigger if exists appointments_status_guard on app.appointments;
create trigger appointments_status_guard
  before insert or update of status on app.appointments
  for each row execute function app.appointment_status_guard();

