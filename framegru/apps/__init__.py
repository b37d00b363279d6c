"""Uses of a trained model: predicting a video, the webcam, classifying stills."""
