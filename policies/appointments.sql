-- Appointments: the status machine and the shop's slot length. Re-appliable.

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

create or replace trigger appointments_status_guard
  before insert or update of status on app.appointments
  for each row execute function app.appointment_status_guard();


/*
 * Slots: an appointment lasts a whole number of the shop's slots (appointment_slot_minutes, read
 * in the writer's transaction by app.shop_settings), checked when it is booked and whenever its
 * times change; a later change of the slot length leaves booked appointments as they are. Raises
 * SS422 (APPOINTMENT_OFF_SLOT) with the slot length in DETAIL. A start not before its end is
 * left to appointments_time_check, a row of another shop (or without a context) to RLS.
 */
create or replace function app.appointment_slot_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_slot integer;
begin
  if tg_op = 'UPDATE' and (new.starts_at, new.ends_at) is not distinct from (old.starts_at, old.ends_at) then
    return new;
  end if;
  if not (new.starts_at < new.ends_at) then
    return new;
  end if;
  select s.appointment_slot_minutes into v_slot from app.shop_settings(new.tenant_id, tg_relid) s;
  if v_slot is not null and extract(epoch from new.ends_at - new.starts_at) % (v_slot * 60) <> 0 then
    raise exception 'an appointment lasts a whole number of the shop''s %-minute slots', v_slot
      using errcode = 'SS422', constraint = 'appointment_slot', detail = v_slot::text;
  end if;
  return new;
end
$$;
revoke execute on function app.appointment_slot_guard() from public;

create or replace trigger appointments_slot_guard
  before insert or update of starts_at, ends_at on app.appointments
  for each row execute function app.appointment_slot_guard();
