//! Joins a stream's output chunks into fewer, larger frames.
//!
//! The engine sends one frame per log line, and each frame the agent sends
//! costs a credit and a message on every hop to the client: a log of short
//! lines then moves a few hundred KiB/s, however fast the engine reads. So
//! output that arrives while a frame waits for its credit joins that frame,
//! up to a frame's limit, and so does output that is already there when
//! the credit comes.
//!
//! It never waits for more output: a frame goes out as soon as it has
//! credit, so `logs -f` of a slow writer still shows each line as it is
//! written, and frames grow only when the reader is slower than the
//! writer. Chunks of different outputs (stdout, stderr) are never joined
//! and keep their order; bytes are joined unchanged, so a line's inline
//! timestamp (`docker logs -t`) stays with it.

use futures_util::{FutureExt, Stream, StreamExt};

use crate::model::Chunk;

/// Output chunks from `inner`, joined into frames of at most `limit` bytes
/// by [`first`](Self::first) and then [`join_next`](Self::join_next) or
/// [`join_ready`](Self::join_ready).
pub struct Coalesce<S, E> {
    inner: S,
    limit: usize,
    /// An item that could not join the frame before it: another output, a
    /// chunk that would pass the limit, or an error. It opens the next
    /// frame.
    held: Option<Result<Chunk, E>>,
    /// `inner` has ended; it is not polled again.
    ended: bool,
}

impl<S, E> Coalesce<S, E>
where
    S: Stream<Item = Result<Chunk, E>> + Unpin,
{
    /// Frames of at most `limit` bytes from `inner`. A chunk larger than
    /// `limit` is never joined to and passes unchanged.
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            limit,
            held: None,
            ended: false,
        }
    }

    /// The item that opens the next frame: the held one, or the next from
    /// `inner`. `None` once `inner` has ended and everything was given
    /// out; an error comes in its place in the order.
    ///
    /// # Cancel safety
    /// Safe: nothing taken from `inner` is lost when it is dropped.
    pub async fn first(&mut self) -> Option<Result<Chunk, E>> {
        if let Some(item) = self.held.take() {
            return Some(item);
        }
        if self.ended {
            return None;
        }
        let item = self.inner.next().await;
        self.ended = item.is_none();
        item
    }

    /// Whether more output may still join `frame`.
    pub fn can_join(&self, frame: &Chunk) -> bool {
        self.held.is_none() && !self.ended && frame.data.len() < self.limit
    }

    /// Waits for the next item and joins it to `frame`, or holds it to open
    /// the next frame. Pending forever once nothing more can join (see
    /// [`can_join`](Self::can_join)), so it only ever races the credit.
    ///
    /// # Cancel safety
    /// Safe: it waits only for `inner`'s next item, and what it takes is
    /// joined or held before it returns.
    pub async fn join_next(&mut self, frame: &mut Chunk) {
        if !self.can_join(frame) {
            return std::future::pending().await;
        }
        let item = self.inner.next().await;
        self.join(frame, item);
    }

    /// Joins to `frame` the output that is ready now, without waiting.
    pub fn join_ready(&mut self, frame: &mut Chunk) {
        while self.can_join(frame) {
            let Some(item) = self.inner.next().now_or_never() else {
                return;
            };
            self.join(frame, item);
        }
    }

    fn join(&mut self, frame: &mut Chunk, item: Option<Result<Chunk, E>>) {
        match item {
            None => self.ended = true,
            Some(Ok(chunk))
                if chunk.kind == frame.kind
                    && frame.data.len() + chunk.data.len() <= self.limit =>
            {
                frame.data.extend_from_slice(&chunk.data);
            }
            Some(other) => self.held = Some(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::stream;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;
    use crate::model::OutputKind;

    type Item = Result<Chunk, &'static str>;

    fn chunk(kind: OutputKind, data: &str) -> Item {
        Ok(Chunk {
            kind,
            data: data.as_bytes().to_vec(),
        })
    }

    fn text(frame: &Chunk) -> (OutputKind, String) {
        (
            frame.kind,
            String::from_utf8_lossy(&frame.data).into_owned(),
        )
    }

    /// Every frame, each joined from what is ready (as when the credit is
    /// there at once).
    async fn ready_frames<S: Stream<Item = Item> + Unpin>(
        frames: &mut Coalesce<S, &'static str>,
    ) -> Vec<Result<(OutputKind, String), &'static str>> {
        let mut out = Vec::new();
        while let Some(first) = frames.first().await {
            out.push(first.map(|mut frame| {
                frames.join_ready(&mut frame);
                text(&frame)
            }));
        }
        out
    }

    #[tokio::test]
    async fn ready_chunks_of_one_output_are_joined_up_to_the_limit() {
        let lines = (0..10).map(|i| chunk(OutputKind::Stdout, &format!("line{i}\n")));
        let mut frames = Coalesce::new(stream::iter(lines), 24);
        // Six bytes a line: four fit in 24.
        assert_eq!(
            ready_frames(&mut frames).await,
            [
                Ok((OutputKind::Stdout, "line0\nline1\nline2\nline3\n".into())),
                Ok((OutputKind::Stdout, "line4\nline5\nline6\nline7\n".into())),
                Ok((OutputKind::Stdout, "line8\nline9\n".into())),
            ]
        );
        assert!(frames.first().await.is_none(), "stays ended");
    }

    #[tokio::test]
    async fn outputs_are_never_joined_and_keep_their_order() {
        let items = [
            chunk(OutputKind::Stdout, "a\n"),
            chunk(OutputKind::Stdout, "b\n"),
            chunk(OutputKind::Stderr, "c\n"),
            chunk(OutputKind::Stdout, "d\n"),
            chunk(OutputKind::Stderr, "e\n"),
            chunk(OutputKind::Stderr, "f\n"),
        ];
        let mut frames = Coalesce::new(stream::iter(items), 1024);
        assert_eq!(
            ready_frames(&mut frames).await,
            [
                Ok((OutputKind::Stdout, "a\nb\n".into())),
                Ok((OutputKind::Stderr, "c\n".into())),
                Ok((OutputKind::Stdout, "d\n".into())),
                Ok((OutputKind::Stderr, "e\nf\n".into())),
            ]
        );
    }

    #[tokio::test]
    async fn a_chunk_is_not_held_back_waiting_for_more() {
        let (tx, rx) = mpsc::channel(8);
        let mut frames = Coalesce::new(ReceiverStream::new(rx), 1024);
        tx.send(chunk(OutputKind::Stdout, "first\n"))
            .await
            .expect("send");
        // The writer is still there but has nothing more: the line is a
        // whole frame at once, not when more comes or the stream ends.
        let mut frame = frames
            .first()
            .now_or_never()
            .expect("ready at once")
            .expect("an item")
            .expect("a chunk");
        frames.join_ready(&mut frame);
        assert_eq!(text(&frame), (OutputKind::Stdout, "first\n".into()));
        assert!(frames.first().now_or_never().is_none(), "nothing to send");
        drop(tx);
        assert!(frames.first().await.is_none());
    }

    #[tokio::test]
    async fn output_arriving_while_a_frame_waits_joins_it() {
        let (tx, rx) = mpsc::channel(8);
        let mut frames = Coalesce::new(ReceiverStream::new(rx), 1024);
        tx.send(chunk(OutputKind::Stdout, "a\n"))
            .await
            .expect("send");
        let mut frame = frames.first().await.expect("an item").expect("a chunk");
        // The frame waits for credit; meanwhile the writer goes on.
        for line in ["b\n", "c\n"] {
            tx.send(chunk(OutputKind::Stdout, line))
                .await
                .expect("send");
            frames.join_next(&mut frame).await;
        }
        tx.send(chunk(OutputKind::Stderr, "err\n"))
            .await
            .expect("send");
        frames.join_next(&mut frame).await;
        assert_eq!(text(&frame), (OutputKind::Stdout, "a\nb\nc\n".into()));
        // stderr is held for the next frame; nothing more joins this one.
        assert!(!frames.can_join(&frame));
        assert!(frames.join_next(&mut frame).now_or_never().is_none());
        let next = frames.first().await.expect("an item").expect("a chunk");
        assert_eq!(text(&next), (OutputKind::Stderr, "err\n".into()));
    }

    #[tokio::test]
    async fn an_error_comes_after_the_output_before_it() {
        let items = [
            chunk(OutputKind::Stdout, "a\n"),
            chunk(OutputKind::Stdout, "b\n"),
            Err("engine went away"),
            chunk(OutputKind::Stdout, "after\n"),
        ];
        let mut frames = Coalesce::new(stream::iter(items), 1024);
        let seen = ready_frames(&mut frames).await;
        assert_eq!(seen[0], Ok((OutputKind::Stdout, "a\nb\n".into())));
        assert_eq!(seen[1], Err("engine went away"));
    }

    #[tokio::test]
    async fn a_chunk_over_the_limit_passes_whole_and_alone() {
        let items = [
            chunk(OutputKind::Stdout, "ab"),
            chunk(OutputKind::Stdout, "0123456789"),
            chunk(OutputKind::Stdout, "cd"),
        ];
        let mut frames = Coalesce::new(stream::iter(items), 4);
        assert_eq!(
            ready_frames(&mut frames).await,
            [
                Ok((OutputKind::Stdout, "ab".into())),
                Ok((OutputKind::Stdout, "0123456789".into())),
                Ok((OutputKind::Stdout, "cd".into())),
            ]
        );
    }

    /// A stream that fails the test if it is polled after it ended.
    struct EndsOnce(Option<Item>, bool);

    impl Stream for EndsOnce {
        type Item = Item;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Item>> {
            assert!(!self.1, "polled after its end");
            let item = self.0.take();
            if item.is_none() {
                self.1 = true;
            }
            Poll::Ready(item)
        }
    }

    #[tokio::test]
    async fn an_ended_stream_is_not_polled_again() {
        let items = EndsOnce(Some(chunk(OutputKind::Stdout, "x")), false);
        let mut frames = Coalesce::new(items, 8);
        let mut frame = frames.first().await.expect("an item").expect("a chunk");
        frames.join_ready(&mut frame);
        assert!(!frames.can_join(&frame), "the end was seen");
        assert!(frames.join_next(&mut frame).now_or_never().is_none());
        assert!(frames.first().await.is_none());
        assert!(frames.first().await.is_none());
    }
}
