//! The server's side of a session: each complete response, forwarded as
//! it came unless it carries capabilities, answers a FETCH or SEARCH sotto
//! is preparing, or is over the limit.

use std::sync::Arc;

use imap_codec::encode::Encoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::IntoStatic as _;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Code, Data, Response, Status, StatusKind};
use imap_codec::{GreetingCodec, ResponseCodec};

use super::capabilities;
use super::fetch;
use super::proxy::{InFlight, Session};

impl Session {
    /// Handles every complete server message: bytes for the client.
    pub(super) async fn server_messages(&mut self, f: &mut Fragmentizer) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(info) = f.progress() {
            let max = self.shared.max_message as usize;
            let announced = match info {
                FragmentInfo::Line {
                    announcement: Some(LiteralAnnouncement { length, .. }),
                    ..
                } => length as usize,
                _ => 0,
            };
            if f.message_bytes().len() + announced > max || f.is_max_message_size_exceeded() {
                // The stream cannot be trusted past this point: the session
                // ends, the client is told why.
                out.extend_from_slice(
                    format!("* BYE sotto: the server sent a response over {max} bytes\r\n")
                        .as_bytes(),
                );
                metrics::counter!("sotto_imap_refused_total", "reason" => "server_too_big")
                    .increment(1);
                self.fatal = Some(format!("server response over {max} bytes"));
                return out;
            }
            if !f.is_message_complete() {
                continue;
            }
            let raw = f.message_bytes().to_vec();
            if !self.greeted {
                self.greeted = true;
                out.extend(self.greeting(f, &raw));
                continue;
            }
            let resp = f
                .decode_message(&ResponseCodec::default())
                .map(|r| r.into_static());
            match resp {
                Ok(resp) => out.extend(self.response(resp, &raw).await),
                Err(_) => {
                    // Unreadable, forwarded as it came; but a tagged answer
                    // still ends what it answers (nothing waits forever).
                    let swallowed = match f.decode_tag() {
                        Some(tag) => {
                            let tag = tag.as_ref().to_owned();
                            if self.login.as_ref().is_some_and(|l| l.0 == tag) {
                                // Not known to be OK: no user.
                                self.login = None;
                                self.authenticating = None;
                            }
                            self.tag_done(&tag, false)
                        }
                        None => false,
                    };
                    if !swallowed {
                        out.extend_from_slice(&raw);
                    }
                }
            }
        }
        out
    }

    fn greeting(&self, f: &Fragmentizer, raw: &[u8]) -> Vec<u8> {
        let Ok(mut g) = f.decode_message(&GreetingCodec::default()) else {
            return raw.to_vec();
        };
        match g.code.take() {
            Some(Code::Capability(caps)) => {
                g.code = Vec1::try_from(capabilities::filtered(caps, self.offer_starttls()))
                    .ok()
                    .map(Code::Capability);
                GreetingCodec::default().encode(&g).dump()
            }
            other => {
                g.code = other;
                raw.to_vec()
            }
        }
    }

    async fn response(&mut self, resp: Response<'static>, raw: &[u8]) -> Vec<u8> {
        let encode = |r: &Response<'_>| ResponseCodec::default().encode(r).dump();
        match resp {
            Response::Data(Data::Capability(caps)) => {
                match Vec1::try_from(capabilities::filtered(caps, self.offer_starttls())) {
                    Ok(kept) => encode(&Response::Data(Data::Capability(kept))),
                    Err(_) => raw.to_vec(),
                }
            }
            Response::Status(Status::Tagged(mut t)) => {
                if self.tag_done(t.tag.as_ref(), t.body.kind == StatusKind::Ok) {
                    return Vec::new();
                }
                if self.idling.as_deref() == Some(t.tag.as_ref()) {
                    self.idling = None;
                }
                if self.authenticating.as_ref().map(|a| a.0.as_str()) == Some(t.tag.as_ref()) {
                    self.authenticating = None;
                    self.sasl_expected = false;
                }
                if let Some((tag, user)) = self.login.take() {
                    if tag != t.tag.as_ref() {
                        self.login = Some((tag, user));
                    } else if t.body.kind == StatusKind::Ok {
                        self.set_user(&user).await;
                    }
                }
                match t.body.code.take() {
                    Some(Code::Capability(caps)) => {
                        t.body.code =
                            Vec1::try_from(capabilities::filtered(caps, self.offer_starttls()))
                                .ok()
                                .map(Code::Capability);
                        encode(&Response::Status(Status::Tagged(t)))
                    }
                    _ => raw.to_vec(),
                }
            }
            Response::CommandContinuationRequest(_) => {
                if self.authenticating.is_some() {
                    self.sasl_expected = true;
                }
                raw.to_vec()
            }
            Response::Data(Data::Fetch { seq, items }) => {
                if matches!(self.in_flight, Some(InFlight::Search(_))) {
                    // Only sotto's own FETCH carries the whole message; a
                    // flag change the server reports meanwhile passes.
                    if fetch::whole_message(items.as_ref()).is_none() {
                        return raw.to_vec();
                    }
                    // Past the bound, messages are counted, not opened.
                    let full = matches!(&self.in_flight, Some(InFlight::Search(j)) if j.full());
                    let message = if full { None } else { self.shown(&items) };
                    if let Some(InFlight::Search(job)) = &mut self.in_flight {
                        job.add(items.as_ref(), message.as_deref().map_or(&[][..], |m| m));
                    }
                    return Vec::new();
                }
                match self.answer_fetch(&items) {
                    Some(items) => encode(&Response::Data(Data::Fetch { seq, items })),
                    None => raw.to_vec(),
                }
            }
            _ => raw.to_vec(),
        }
    }

    /// A FETCH response to the plan in flight, answered from the message
    /// the user sees: opened if it is encrypted to them, else as stored.
    /// `None` (forwarded as it came) for any other FETCH response, such as
    /// a flag change the server reports meanwhile.
    fn answer_fetch(
        &self,
        items: &Vec1<MessageDataItem<'static>>,
    ) -> Option<Vec1<MessageDataItem<'static>>> {
        let Some(InFlight::Fetch(plan)) = self.in_flight.as_ref() else {
            return None;
        };
        plan.answer(items.as_ref(), &self.shown(items)?)
    }

    /// The message a FETCH response carries whole, as the user sees it:
    /// opened if it is encrypted to them, else as stored.
    fn shown(&self, items: &Vec1<MessageDataItem<'static>>) -> Option<Arc<Vec<u8>>> {
        let key = self.key.as_ref()?;
        let stored = fetch::whole_message(items.as_ref())?;
        let max = self.shared.max_message as usize;
        Some(
            self.shared
                .opened
                .view(key, stored, max, &self.policy)
                .unwrap_or_else(|| Arc::new(stored.to_vec())),
        )
    }

    /// The tagged answer to `tag` came (`ok`: OK): whatever sotto had in
    /// flight for it ends. `true` when the answer is sotto's own and must
    /// not reach the client.
    fn tag_done(&mut self, tag: &str, ok: bool) -> bool {
        match &self.in_flight {
            Some(InFlight::Fetch(p)) if p.tag == tag => self.in_flight = None,
            Some(InFlight::Login(t)) if t == tag => self.in_flight = None,
            Some(InFlight::Search(j)) if j.internal_tag == tag => {
                // sotto's own FETCH done: the client's SEARCH goes next.
                if let Some(InFlight::Search(job)) = self.in_flight.take() {
                    self.held.push_front((job.finish(ok), None));
                }
                return true;
            }
            _ => {}
        }
        false
    }
}
